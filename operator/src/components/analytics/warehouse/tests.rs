use std::ops::ControlFlow;

use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::RedshiftSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use super::*;

fn names() -> WarehouseNames {
    WarehouseNames::new(
        "photos",
        "ipl_media_photos_events_1a2b3c4d".into(),
        "arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-redshift-1a2b3c4d".into(),
        "photos-bucket",
    )
}

/// What Redshift's `CREATE EXTERNAL SCHEMA … FROM DATA CATALOG` names.
#[derive(Debug, PartialEq)]
struct ExternalSchema {
    name: String,
    catalog_database: String,
    role: String,
}

/// sqlparser's Redshift dialect does not know `CREATE EXTERNAL SCHEMA`: it
/// is parsed here with its tokenizer and parser, following Redshift's
/// grammar for the Data Catalog form, to the end of the statement.
fn parse_external_schema(sql: &str) -> Result<Option<ExternalSchema>, ParserError> {
    let mut parser = Parser::new(&RedshiftSqlDialect {}).try_with_sql(sql)?;
    if !parser.parse_keywords(&[Keyword::CREATE, Keyword::EXTERNAL, Keyword::SCHEMA]) {
        return Ok(None);
    }
    let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_identifier()?.value;
    parser.expect_keywords(&[Keyword::FROM, Keyword::DATA, Keyword::CATALOG, Keyword::DATABASE])?;
    let catalog_database = parser.parse_literal_string()?;
    parser.expect_keyword_is(Keyword::IAM_ROLE)?;
    let role = parser.parse_literal_string()?;
    parser.expect_token(&Token::EOF)?;
    Ok(Some(ExternalSchema {
        name,
        catalog_database,
        role,
    }))
}

/// One statement, to its end. sqlparser's Redshift dialect stops at a
/// `CREATE TABLE`'s table attributes (`DISTSTYLE`, `SORTKEY`): they are
/// parsed here after the statement, following Redshift's grammar, and the
/// statement printed back with them.
fn parse(sql: &str) -> (Statement, String) {
    let fail = |e: ParserError| -> ! { panic!("{e}: {sql}") };
    let mut parser = Parser::new(&RedshiftSqlDialect {})
        .try_with_sql(sql)
        .unwrap_or_else(|e| fail(e));
    let statement = parser.parse_statement().unwrap_or_else(|e| fail(e));
    let mut printed = statement.to_string();
    if matches!(statement, Statement::CreateTable(_)) {
        printed.push_str(&parse_table_attributes(&mut parser).unwrap_or_else(|e| fail(e)));
    }
    parser.expect_token(&Token::EOF).unwrap_or_else(|e| fail(e));
    (statement, printed)
}

/// `DISTSTYLE { AUTO | EVEN | ALL | KEY }` and `[COMPOUND] SORTKEY (column, …)`.
fn parse_table_attributes(parser: &mut Parser) -> Result<String, ParserError> {
    let mut printed = String::new();
    loop {
        let word = match parser.peek_token().token {
            Token::Word(word) => word.value.to_uppercase(),
            _ => return Ok(printed),
        };
        match word.as_str() {
            "DISTSTYLE" => {
                parser.next_token();
                let style = parser.parse_identifier()?.value.to_uppercase();
                if !["AUTO", "EVEN", "ALL", "KEY"].contains(&style.as_str()) {
                    return parser.expected("AUTO, EVEN, ALL or KEY", parser.peek_token());
                }
                printed.push_str(&format!(" DISTSTYLE {style}"));
            }
            "SORTKEY" => {
                parser.next_token();
                parser.expect_token(&Token::LParen)?;
                let columns = parser.parse_comma_separated(Parser::parse_identifier)?;
                parser.expect_token(&Token::RParen)?;
                let columns: Vec<String> = columns.iter().map(ToString::to_string).collect();
                printed.push_str(&format!(" SORTKEY ({})", columns.join(", ")));
            }
            _ => return Ok(printed),
        }
    }
}

#[test]
fn every_statement_parses_as_redshift_sql_and_prints_back_as_written() {
    let names = names();
    for migration in migrations(&names) {
        if let Some(schema) = parse_external_schema(&migration.sql).expect("Redshift's grammar") {
            assert_eq!(
                schema,
                ExternalSchema {
                    name: names.external_schema.clone(),
                    catalog_database: names.catalog_database.clone(),
                    role: names.role_arn.clone(),
                }
            );
            continue;
        }
        // Printed back unchanged: nothing was skipped or read differently.
        assert_eq!(
            parse(&migration.sql).1,
            migration.sql,
            "migration {}",
            migration.version
        );
    }
}

#[test]
fn versions_count_from_one_without_gaps_and_the_first_is_as_released() {
    let all = migrations(&names());
    let versions: Vec<u32> = all.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=18).collect::<Vec<_>>());
    assert_eq!(latest_version(&names()), 18);
    // Clusters that applied 1–9 before images had a perceptual hash ran
    // views without it; those statements stay as released.
    assert!(all[..9].iter().all(|m| !m.sql.contains("phash")));
    // Clusters tagged schema-version 1 ran exactly this.
    assert!(
        all[0]
            .sql
            .starts_with("CREATE TABLE IF NOT EXISTS image_events (id VARCHAR(36) NOT NULL")
    );
}

#[test]
fn views_are_late_binding_over_schema_qualified_relations_only() {
    let names = names();
    let views = [
        "events",
        "images",
        "images_daily",
        "duplicate_uploads",
        "stream_offsets",
        "events",
        "images",
        "near_duplicates",
        "events",
        "images",
    ];
    let mut seen = vec![];
    let in_sqlparser = |m: &Migration| parse_external_schema(&m.sql).expect("grammar").is_none();
    for migration in migrations(&names).into_iter().filter(in_sqlparser) {
        let Statement::CreateView {
            name,
            or_replace,
            with_no_schema_binding,
            ..
        } = parse(&migration.sql).0
        else {
            continue;
        };
        assert!(or_replace && with_no_schema_binding, "{name}");
        assert_eq!(name.0.len(), 2, "{name} is in the analysts' schema");
        assert_eq!(name.0[0].to_string(), format!("\"{}\"", names.schema));
        seen.push(name.0[1].to_string());
        // Redshift requires a late-binding view's relations to be qualified.
        let _ = visit_relations(&parse(&migration.sql).0, |relation| {
            if relation.0.len() != 2 {
                panic!("{relation} in view {name} has no schema");
            }
            ControlFlow::<()>::Continue(())
        });
    }
    assert_eq!(seen, views);
}

#[test]
fn the_events_table_reads_every_key_of_the_event_record() {
    let item = ingest_core::record::EventRecord {
        item: ingest_core::record::ImageItem {
            id: ingest_core::record::ImageId::for_content(&[7; 32], "2026-12-02T10:00:00Z".parse().unwrap()),
            sha256: "ab".repeat(32),
            original_sha256: Some("cd".repeat(32)),
            uploaded_by: Some("mobile-app".into()),
            content_type: "image/png".into(),
            bytes: 10,
            width: 1,
            height: 1,
            phash: Some(ingest_core::PerceptualHash(7)),
            bucket: "photos-bucket".into(),
            key: "images/2026/12/02/x.png".into(),
            source: ingest_core::record::Source::Stream,
            ingested_at: "2026-12-02T10:00:00.123456789Z".parse().unwrap(),
            expires_at: 1,
        },
        kafka: Some(ingest_core::record::KafkaPosition {
            topic: "images".into(),
            partition: 3,
            offset: 42,
        }),
    };
    let line: serde_json::Value = serde_json::from_slice(&item.to_line()).unwrap();
    let mut keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
    let mut columns: Vec<&str> = EVENT_COLUMNS.iter().map(|c| c.json_key).collect();
    keys.sort_unstable();
    columns.sort_unstable();
    assert_eq!(columns, keys);
    assert_eq!(
        serde_parameters(),
        BTreeMap::from(
            [
                ("case.insensitive", "false"),
                ("mapping.content_type", "contentType"),
                ("mapping.expires_at", "expiresAt"),
                ("mapping.ingested_at", "ingestedAt"),
                ("mapping.original_sha256", "originalSha256"),
                ("mapping.uploaded_by", "uploadedBy"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        )
    );
}

#[test]
fn the_script_holds_every_statement_in_order_ending_in_a_semicolon() {
    let names = names();
    let script = ddl(&names, "ipl-media-photos-warehouse-1a2b3c4d", "photos");
    let mut from = 0;
    for migration in migrations(&names) {
        let statement = format!(
            "-- migration {}: {}\n{};\n",
            migration.version, migration.purpose, migration.sql
        );
        let at = script[from..]
            .find(&statement)
            .unwrap_or_else(|| panic!("migration {} after byte {from}", migration.version));
        from += at + statement.len();
    }
    assert!(
        script[from..].contains(&format!("{};\n", check(&names))),
        "the check comes last"
    );
    assert_eq!(parse(&check(&names)).1, check(&names));
    assert!(script.contains("s3://photos-bucket/events/"), "{script}");
    assert!(
        script.contains("--     content_type string (key contentType)"),
        "{script}"
    );
}
