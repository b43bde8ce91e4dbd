//! An SSM SecureString parameter holding a secret (the upload API's keys),
//! found by its name. Its value never reaches plan text or messages.

use aws_sdk_ssm::types::ParameterType;
use rand::Rng;

use super::sdk::{deleted, failed};
use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{SecretText, Tags};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct SecureParameter {
    pub name: String,
    pub description: String,
    /// What it must hold (mirrored from a Kubernetes Secret); `None`: a
    /// random key is generated once and whatever it holds is kept from then
    /// on.
    pub value: Option<SecretText>,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParameterState {
    pub name: String,
    pub value: SecretText,
}

impl SecureParameter {
    /// Where its value comes from, as plan shows it.
    fn source(&self) -> String {
        match &self.value {
            Some(_) => "SecureString: the API keys of the pipeline's Secret".to_owned(),
            None => format!(
                "SecureString: a generated API key; read it with \
                 `aws ssm get-parameter --with-decryption --name {}`",
                self.name
            ),
        }
    }

    async fn put(&self, aws: &AwsClients, value: &SecretText, overwrite: bool) -> Result<(), ComponentError> {
        let mut request = aws
            .ssm
            .put_parameter()
            .name(&self.name)
            .description(&self.description)
            .r#type(ParameterType::SecureString)
            .value(value.expose())
            .overwrite(overwrite);
        // SSM refuses tags together with an overwrite.
        if !overwrite {
            request = request.set_tags(Some(to_sdk(&self.tags)?));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // Written by a pass that crashed before it saw the answer; the
            // next walk compares what it holds.
            Err(err) if !overwrite && code(&err) == Some("ParameterAlreadyExists") => Ok(()),
            Err(err) => Err(failed("write", &self.label())(err)),
        }
    }
}

impl Resource for SecureParameter {
    type Observed = ParameterState;
    // Not listed among the pipeline's resources in the status.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("SSM parameter {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ParameterState>, ComponentError> {
        match aws
            .ssm
            .get_parameter()
            .name(&self.name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .parameter()
                .and_then(|p| p.value())
                .map(|value| ParameterState {
                    name: self.name.clone(),
                    value: SecretText::new(value),
                })),
            Err(err) if code(&err) == Some("ParameterNotFound") => Ok(None),
            Err(err) => Err(classify(&format!("read {}", self.label()), err)),
        }
    }

    fn delta(&self, observed: &ParameterState) -> Result<Vec<String>, ComponentError> {
        Ok(match &self.value {
            Some(wanted) if *wanted != observed.value => vec![self.source()],
            // A generated key is never rotated.
            _ => vec![],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![self.source()]
    }

    async fn create(&self, aws: &AwsClients) -> Result<ParameterState, ComponentError> {
        let value = self.value.clone().unwrap_or_else(generate_key);
        self.put(aws, &value, false).await?;
        Ok(ParameterState {
            name: self.name.clone(),
            value,
        })
    }

    async fn update(&self, aws: &AwsClients, _observed: &ParameterState) -> Result<(), ComponentError> {
        match &self.value {
            Some(value) => self.put(aws, value, true).await,
            None => Ok(()),
        }
    }

    async fn delete(&self, aws: &AwsClients, _observed: &ParameterState) -> Result<(), ComponentError> {
        deleted(
            aws.ssm.delete_parameter().name(&self.name).send().await,
            &["ParameterNotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &ParameterState) -> String {
        observed.name.clone()
    }
}

/// 256 random bits in hex.
fn generate_key() -> SecretText {
    let bytes: [u8; 32] = rand::rng().random();
    SecretText::new(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_kept_and_secret_keys_are_mirrored_without_showing_them() {
        let mut parameter = SecureParameter {
            name: "/imagepipeline/media/photos/api-keys".into(),
            description: String::new(),
            value: None,
            tags: Tags::new(),
        };
        let stored = ParameterState {
            name: parameter.name.clone(),
            value: SecretText::new("generated"),
        };
        assert_eq!(
            parameter.delta(&stored).unwrap(),
            Vec::<String>::new(),
            "a generated key is not rotated"
        );
        assert!(parameter.create_fields()[0].contains("aws ssm get-parameter --with-decryption"));

        parameter.value = Some(SecretText::new("from-the-secret"));
        let fields = parameter.delta(&stored).unwrap();
        assert_eq!(fields, ["SecureString: the API keys of the pipeline's Secret"]);
        assert!(!format!("{fields:?} {parameter:?}").contains("from-the-secret"));
        let mirrored = ParameterState {
            value: SecretText::new("from-the-secret"),
            ..stored
        };
        assert_eq!(parameter.delta(&mirrored).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_generated_key_is_256_bits_of_hex() {
        let key = generate_key();
        assert_eq!(key.expose().len(), 64);
        assert!(key.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, generate_key());
    }
}
