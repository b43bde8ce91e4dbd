//! The report `make demo` prints: where each sample went, what the
//! bucket, the table, the delivery stream and the dead-letter topic hold,
//! and what an analyst would see of it in the warehouse.

use std::fmt;

use serde_json::Value;

use crate::local::{Manifest, PipelineStatus};
use crate::samples::SampleRun;
use crate::warehouse::AnalystView;

/// Everything the report shows.
pub struct Report<'a> {
    pub manifest: &'a Manifest,
    pub status: &'a PipelineStatus,
    pub run: &'a SampleRun,
    /// The warehouse's views over the events that landed.
    pub analysts: &'a AnalystView,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run;
        let landed = &run.landed;
        let endpoints = &self.status.endpoints;
        let bucket = endpoints.bucket.as_deref().unwrap_or("?");
        let item_by_sha = |sha: &str| landed.items.iter().find(|i| i["sha256"] == sha);

        writeln!(f, "Through the upload API (POST /v1/images):")?;
        for (sample, upload) in &run.uploads {
            let body = &upload.body;
            writeln!(
                f,
                "  {:<18} {} {:<8} id {}",
                sample.name,
                upload.status,
                status_word(upload.status),
                body["id"].as_str().unwrap_or("?"),
            )?;
        }
        let (bad, refused) = &run.bad_upload;
        writeln!(
            f,
            "  {:<18} {} {:<8} {}: {}",
            bad.name,
            refused.status,
            status_word(refused.status),
            refused.body["error"]["code"].as_str().unwrap_or("?"),
            refused.body["error"]["message"].as_str().unwrap_or("?")
        )?;

        writeln!(
            f,
            "\nThrough Kafka (topic {}, read by stream-bridge):",
            self.manifest.topic
        )?;
        for (sample, produced) in &run.produced {
            let landed_as = item_by_sha(&sample.sha256())
                .map(|item| format!("id {}", item["id"].as_str().unwrap_or("?")))
                .unwrap_or_else(|| "NOT STORED".to_owned());
            writeln!(
                f,
                "  {:<18} partition {:>2} offset {:<3} → {landed_as}",
                sample.name, produced.partition, produced.offset
            )?;
        }
        let (poison, produced) = &run.poison;
        let dead = landed.dead_letters.iter().find(|d| d.payload == poison.bytes);
        writeln!(
            f,
            "  {:<18} partition {:>2} offset {:<3} → {}",
            poison.name,
            produced.partition,
            produced.offset,
            dead.map(|d| format!(
                "dead-lettered to {} (error-code {})",
                self.manifest.dead_letter_topic(),
                d.error_code.as_deref().unwrap_or("?")
            ))
            .unwrap_or_else(|| "NOT DEAD-LETTERED".to_owned())
        )?;

        writeln!(f, "\nS3 bucket {bucket}: {} images", landed.images.len())?;
        for object in &landed.images {
            writeln!(
                f,
                "  {:<62} {:<10} {:>5} B  sha256 {}…",
                object.key,
                object.content_type.as_deref().unwrap_or("?"),
                object.size,
                object.sha256.as_deref().and_then(|s| s.get(..12)).unwrap_or("?")
            )?;
        }

        writeln!(
            f,
            "\nDynamoDB table {}: {} items",
            endpoints.table.as_deref().unwrap_or("?"),
            landed.items.len()
        )?;
        writeln!(
            f,
            "  {:<36}  {:<7} {:<11} {:>6} {:>7}  {:<20} expiresAt",
            "id", "source", "contentType", "bytes", "size", "ingestedAt"
        )?;
        for item in &landed.items {
            let text = |name: &str| item[name].as_str().unwrap_or("?").to_owned();
            let number = |name: &str| item[name].as_u64().map_or("?".to_owned(), |n| n.to_string());
            writeln!(
                f,
                "  {:<36}  {:<7} {:<11} {:>6} {:>7}  {:<20} {}",
                text("id"),
                text("source"),
                text("contentType"),
                number("bytes"),
                format!("{}×{}", number("width"), number("height")),
                text("ingestedAt").get(..19).unwrap_or("?"),
                number("expiresAt")
            )?;
        }

        writeln!(
            f,
            "\nFirehose stream {}: {} events in {} objects under s3://{bucket}/events/",
            endpoints.delivery_stream.as_deref().unwrap_or("?"),
            landed.events.len(),
            landed.event_objects.len()
        )?;
        for key in &landed.event_objects {
            writeln!(f, "  {key}")?;
        }
        if let Some(event) = landed.events.iter().find(|e| e.get("kafka").is_some()) {
            writeln!(f, "  one of them: {}", compact(event))?;
        }

        writeln!(
            f,
            "\nDead-letter topic {}: {} record(s)",
            self.manifest.dead_letter_topic(),
            landed.dead_letters.len()
        )?;
        for dead in &landed.dead_letters {
            writeln!(
                f,
                "  error-code {}: {}",
                dead.error_code.as_deref().unwrap_or("?"),
                dead.error_message.as_deref().unwrap_or("?")
            )?;
        }

        let warehouse = endpoints.warehouse.as_deref().unwrap_or("?");
        writeln!(
            f,
            "\nWhat an analyst querying the warehouse {warehouse} would see, COMPUTED LOCALLY WITH SQLITE:\n  \
             the emulator has no warehouse engine, so the views `imagepipeline warehouse ddl` prints are\n  \
             translated from Redshift SQL to SQLite and run over the {} events above",
            landed.events.len()
        )?;
        writeln!(f, "  images ({} rows):", self.analysts.images.rows.len())?;
        indented(f, &self.analysts.images.to_string())?;
        writeln!(f, "  images_daily:")?;
        indented(f, &self.analysts.images_daily.to_string())?;

        write!(
            f,
            "\nSent {} images and 2 bad inputs; everything landed {:.1} s after the first upload.",
            run.uploads.len() + run.produced.len(),
            run.took.as_secs_f64()
        )
    }
}

fn status_word(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad",
        413 => "TooLarge",
        415 => "Refused",
        _ => "",
    }
}

fn indented(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    text.lines().try_for_each(|line| writeln!(f, "    {line}"))
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
