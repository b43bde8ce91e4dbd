//! A listener of a load balancer forwarding one port to a target group:
//! HTTPS with an ACM certificate, or plain HTTP. Found by its load balancer
//! and port; listeners on ports no longer wanted are deleted.

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Certificate, ProtocolEnum};

use super::sdk::{deleted, failed};
use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify_with};
use crate::engine::field;
use crate::engine::resource::{Ref, Resource};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// The ARN of its load balancer; `load_balancer_name` for messages.
    pub load_balancer: Ref,
    pub load_balancer_name: String,
    pub port: i32,
    /// HTTPS with this certificate (named by `spec.uploadApi.certificateArn`);
    /// plain HTTP when `None`.
    pub certificate_arn: Option<String>,
    /// TLS policy of an HTTPS listener.
    pub tls_policy: &'static str,
    /// The ARN of the target group it forwards to.
    pub target_group: Ref,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerState {
    pub arn: String,
    pub port: i32,
    pub protocol: String,
    pub certificate_arn: Option<String>,
    pub ssl_policy: Option<String>,
    pub target_group_arn: Option<String>,
}

impl Listener {
    /// Of `found`, the listeners on other ports, each as the resource to
    /// delete.
    pub fn others<'a>(&self, found: &'a [ListenerState]) -> Vec<(Self, &'a ListenerState)> {
        let other = |observed: &ListenerState| Self {
            port: observed.port,
            certificate_arn: observed.certificate_arn.clone(),
            ..self.clone()
        };
        found
            .iter()
            .filter(|l| l.port != self.port)
            .map(|l| (other(l), l))
            .collect()
    }

    fn protocol(&self) -> ProtocolEnum {
        match self.certificate_arn {
            Some(_) => ProtocolEnum::Https,
            None => ProtocolEnum::Http,
        }
    }

    /// Only HTTPS listeners have a TLS policy.
    fn ssl_policy(&self) -> Option<&'static str> {
        self.certificate_arn.as_ref().map(|_| self.tls_policy)
    }

    fn certificates(&self) -> Option<Vec<Certificate>> {
        self.certificate_arn
            .as_ref()
            .map(|arn| vec![Certificate::builder().certificate_arn(arn).build()])
    }

    fn forward(&self) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(self.target_group.id())
            .build()
    }

    /// What the spec names for it, for an error saying it is missing.
    fn spec_references(&self) -> Vec<SpecReference<'_>> {
        self.certificate_arn
            .iter()
            .map(|arn| SpecReference::new(Lookup::Certificate, "spec.uploadApi.certificateArn", arn))
            .collect()
    }
}

impl Resource for Listener {
    type Observed = ListenerState;
    // Part of its load balancer.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!(
            "load balancer {} listener on port {}",
            self.load_balancer_name, self.port
        )
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.load_balancer]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ListenerState>, ComponentError> {
        let found = list(aws, self.load_balancer.id()).await?;
        Ok(found.into_iter().find(|l| l.port == self.port))
    }

    fn delta(&self, observed: &ListenerState) -> Result<Vec<String>, ComponentError> {
        let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_owned());
        let protocol = self.protocol();
        let mut fields = Vec::new();
        if observed.protocol != protocol.as_str() {
            fields.push(field("protocol", &observed.protocol, protocol));
        }
        if observed.certificate_arn != self.certificate_arn {
            let (current, wanted) = (text(&observed.certificate_arn), text(&self.certificate_arn));
            fields.push(field("certificate", current, wanted));
        }
        // Emulators report a TLS policy on HTTP listeners too.
        if let Some(policy) = self.ssl_policy()
            && observed.ssl_policy.as_deref() != Some(policy)
        {
            fields.push(field("TLS policy", text(&observed.ssl_policy), policy));
        }
        if observed.target_group_arn.as_deref() != self.target_group.known() {
            let current = text(&observed.target_group_arn);
            fields.push(field("forwards to", current, &self.target_group));
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![match self.ssl_policy() {
            Some(policy) => format!("HTTPS ({policy}) → {}", self.target_group),
            None => format!("HTTP → {}", self.target_group),
        }]
    }

    async fn create(&self, aws: &AwsClients) -> Result<ListenerState, ComponentError> {
        let action = format!("create {}", self.label());
        let out = aws
            .elbv2
            .create_listener()
            .load_balancer_arn(self.load_balancer.id())
            .port(self.port)
            .default_actions(self.forward())
            .protocol(self.protocol())
            .set_ssl_policy(self.ssl_policy().map(str::to_owned))
            .set_certificates(self.certificates())
            .send()
            .await
            .map_err(|err| classify_with(&action, &self.spec_references(), err))?;
        Ok(ListenerState {
            arn: out
                .listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .unwrap_or_default()
                .to_owned(),
            port: self.port,
            protocol: self.protocol().as_str().to_owned(),
            certificate_arn: self.certificate_arn.clone(),
            ssl_policy: self.ssl_policy().map(str::to_owned),
            target_group_arn: self.target_group.known().map(str::to_owned),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &ListenerState) -> Result<(), ComponentError> {
        let action = format!("update {}", self.label());
        aws.elbv2
            .modify_listener()
            .listener_arn(&observed.arn)
            .port(self.port)
            .default_actions(self.forward())
            .protocol(self.protocol())
            .set_ssl_policy(self.ssl_policy().map(str::to_owned))
            .set_certificates(self.certificates())
            .send()
            .await
            .map(drop)
            .map_err(|err| classify_with(&action, &self.spec_references(), err))
    }

    async fn delete(&self, aws: &AwsClients, observed: &ListenerState) -> Result<(), ComponentError> {
        deleted(
            aws.elbv2
                .delete_listener()
                .listener_arn(&observed.arn)
                .send()
                .await,
            &["ListenerNotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &ListenerState) -> String {
        observed.arn.clone()
    }
}

/// The listeners of the load balancer `load_balancer_arn`.
pub async fn list(aws: &AwsClients, load_balancer_arn: &str) -> Result<Vec<ListenerState>, ComponentError> {
    let out = aws
        .elbv2
        .describe_listeners()
        .load_balancer_arn(load_balancer_arn)
        .send()
        .await
        .map_err(failed("list the listeners of load balancer", load_balancer_arn))?;
    Ok(out
        .listeners()
        .iter()
        .map(|l| ListenerState {
            arn: l.listener_arn().unwrap_or_default().to_owned(),
            port: l.port().unwrap_or_default(),
            protocol: l.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            certificate_arn: l
                .certificates()
                .first()
                .and_then(|c| c.certificate_arn())
                .map(str::to_owned),
            ssl_policy: l.ssl_policy().map(str::to_owned),
            target_group_arn: l
                .default_actions()
                .first()
                .and_then(|a| a.target_group_arn())
                .map(str::to_owned),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTIFICATE: &str =
        "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789";

    fn listener(certificate_arn: Option<&str>) -> Listener {
        Listener {
            load_balancer: Ref::Known("arn:lb".into()),
            load_balancer_name: "ipl-media-photos-upload".into(),
            port: if certificate_arn.is_some() { 443 } else { 80 },
            certificate_arn: certificate_arn.map(str::to_owned),
            tls_policy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
            target_group: Ref::Known("arn:tg".into()),
        }
    }

    fn http_on_80() -> ListenerState {
        ListenerState {
            arn: "arn:listener".into(),
            port: 80,
            protocol: "HTTP".into(),
            certificate_arn: None,
            // As emulators report it.
            ssl_policy: Some("ELBSecurityPolicy-2016-08".into()),
            target_group_arn: Some("arn:tg".into()),
        }
    }

    #[test]
    fn a_listener_forwards_its_port_and_a_certificate_moves_it_to_https_on_443() {
        assert_eq!(listener(None).delta(&http_on_80()).unwrap(), Vec::<String>::new());
        let elsewhere = ListenerState {
            target_group_arn: Some("arn:other".into()),
            ..http_on_80()
        };
        assert_eq!(
            listener(None).delta(&elsewhere).unwrap(),
            ["forwards to: arn:other → arn:tg"]
        );

        // A certificate moves it to HTTPS on 443.
        let https = listener(Some(CERTIFICATE));
        let found = [http_on_80()];
        let [(unwanted, observed)] = &https.others(&found)[..] else {
            panic!("the listener on 80 is deleted")
        };
        assert_eq!((unwanted.port, *observed), (80, &found[0]));
        assert!(https.create_fields()[0].starts_with("HTTPS (ELBSecurityPolicy-TLS13-1-2-2021-06)"));
        let on_443 = ListenerState {
            port: 443,
            ..http_on_80()
        };
        assert_eq!(
            https.delta(&on_443).unwrap()[..2],
            [
                "protocol: HTTP → HTTPS".to_owned(),
                format!("certificate: (none) → {CERTIFICATE}")
            ]
        );
    }
}
