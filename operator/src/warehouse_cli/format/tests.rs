use aws_smithy_types::Blob;
use serde_json::{Value, json};

use super::*;

fn column(name: &str, type_name: &str) -> Column {
    Column {
        name: name.to_owned(),
        type_name: type_name.to_owned(),
    }
}

fn text(value: &str) -> Cell {
    Cell::Text(value.to_owned())
}

/// What `SELECT id, source, bytes, ratio, total, ok FROM …` might give.
fn images() -> ResultSet {
    ResultSet {
        columns: vec![
            column("id", "varchar"),
            column("source", "varchar"),
            column("bytes", "int8"),
            column("ratio", "float8"),
            column("total", "numeric"),
            column("ok", "bool"),
        ],
        rows: vec![
            vec![
                text("a1"),
                text("api"),
                Cell::Integer(288),
                Cell::Float(0.5),
                Cell::Decimal("12345678901234567890.123456789".into()),
                Cell::Bool(true),
            ],
            vec![
                text("b22"),
                text("kafka"),
                Cell::Integer(1_048_576),
                Cell::Null,
                Cell::Decimal("-0.10".into()),
                Cell::Null,
            ],
        ],
    }
}

#[test]
fn table_aligns_columns_under_a_centred_header_numbers_to_the_right() {
    let table = render(&Outcome::Rows(images()), QueryFormat::Table);
    let expected = [
        " id  | source |  bytes  | ratio |             total              |  ok",
        "-----+--------+---------+-------+--------------------------------+------",
        " a1  | api    |     288 |   0.5 | 12345678901234567890.123456789 | true",
        " b22 | kafka  | 1048576 |       |                          -0.10 |",
        "(2 rows)",
    ];
    assert_eq!(table.lines().collect::<Vec<_>>(), expected, "{table}");
}

#[test]
fn table_counts_by_terminal_width_and_keeps_each_row_on_one_line() {
    let result = ResultSet {
        columns: vec![column("name", "varchar"), column("n", "int4")],
        rows: vec![
            vec![text("東京"), Cell::Integer(1)],
            vec![text("line one\nline two"), Cell::Null],
        ],
    };
    let table = render(&Outcome::Rows(result), QueryFormat::Table);
    let expected = [
        "        name        | n",
        "--------------------+---",
        " 東京               | 1",
        " line one\\nline two |",
        "(2 rows)",
    ];
    assert_eq!(table.lines().collect::<Vec<_>>(), expected, "{table}");
}

#[test]
fn table_of_no_rows_still_has_its_header_and_one_row_is_singular() {
    let mut result = images();
    result.rows.clear();
    let table = render(&Outcome::Rows(result.clone()), QueryFormat::Table);
    assert!(
        table.starts_with(" id | source | bytes | ratio | total | ok\n"),
        "{table}"
    );
    assert!(table.ends_with("(0 rows)\n"), "{table}");
    result.rows = vec![images().rows.remove(0)];
    assert!(render(&Outcome::Rows(result), QueryFormat::Table).ends_with("\n(1 row)\n"));
}

#[test]
fn json_is_an_array_of_objects_with_typed_values() {
    let text = render(&Outcome::Rows(images()), QueryFormat::Json);
    let value: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        value,
        json!([
            {"id": "a1", "source": "api", "bytes": 288, "ratio": 0.5,
             "total": 12345678901234567890.123456789_f64, "ok": true},
            {"id": "b22", "source": "kafka", "bytes": 1048576, "ratio": null,
             "total": -0.1, "ok": null},
        ])
    );
    // Every digit of the decimal is there, and keys keep column order.
    assert!(
        text.contains("\"total\": 12345678901234567890.123456789"),
        "{text}"
    );
    assert!(text.contains("\"total\": -0.10"), "{text}");
    let keys: Vec<usize> = [
        "\"id\"",
        "\"source\"",
        "\"bytes\"",
        "\"ratio\"",
        "\"total\"",
        "\"ok\"",
    ]
    .iter()
    .map(|key| text.find(key).expect("every key"))
    .collect();
    assert!(keys.is_sorted(), "{text}");
}

#[test]
fn json_keeps_what_is_not_a_json_number_as_text_and_names_repeated_columns_apart() {
    let result = ResultSet {
        columns: vec![
            column("a", "float8"),
            column("a", "numeric"),
            column("a", "varbyte"),
            column("a_2", "varchar"),
        ],
        rows: vec![vec![
            Cell::Float(f64::NAN),
            Cell::Decimal("NaN".into()),
            Cell::Bytes(vec![0, 255]),
            text("x"),
        ]],
    };
    let value: Value =
        serde_json::from_str(&render(&Outcome::Rows(result), QueryFormat::Json)).expect("valid JSON");
    assert_eq!(
        value,
        json!([{"a": "NaN", "a_2": "NaN", "a_3": "\\x00ff", "a_2_2": "x"}])
    );
}

#[test]
fn csv_quotes_commas_quotes_and_line_breaks_and_leaves_nulls_empty() {
    let result = ResultSet {
        columns: vec![
            column("id", "int4"),
            column("note", "varchar"),
            column("who", "varchar"),
        ],
        rows: vec![
            vec![Cell::Integer(1), text("plain"), text("a, b")],
            vec![Cell::Integer(2), text("say \"cheese\""), Cell::Null],
            vec![Cell::Integer(3), text("two\nlines"), text("cr\r\nlf")],
        ],
    };
    let csv = render(&Outcome::Rows(result), QueryFormat::Csv);
    let expected =
        "id,note,who\n1,plain,\"a, b\"\n2,\"say \"\"cheese\"\"\",\n3,\"two\nlines\",\"cr\r\nlf\"\n";
    assert_eq!(csv, expected);
    // And a CSV reader gets the values back.
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("a record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(records[1], ["2", "say \"cheese\"", ""]);
    assert_eq!(records[2], ["3", "two\nlines", "cr\r\nlf"]);
}

#[test]
fn a_statement_without_a_result_set_prints_the_rows_it_affected() {
    let done = |rows_affected| Outcome::Done { rows_affected };
    assert_eq!(render(&done(Some(3)), QueryFormat::Table), "3 rows affected\n");
    assert_eq!(render(&done(Some(1)), QueryFormat::Table), "1 row affected\n");
    assert!(render(&done(None), QueryFormat::Table).contains("did not say"));
    assert_eq!(
        render(&done(Some(3)), QueryFormat::Json),
        "{\"rowsAffected\":3}\n"
    );
    assert_eq!(
        render(&done(None), QueryFormat::Json),
        "{\"rowsAffected\":null}\n"
    );
    assert_eq!(render(&done(Some(3)), QueryFormat::Csv), "rows_affected\n3\n");
}

#[test]
fn data_api_fields_become_typed_cells() {
    let cases = [
        (Field::IsNull(true), "varchar", Cell::Null),
        (Field::LongValue(7), "int8", Cell::Integer(7)),
        (Field::DoubleValue(1.5), "float8", Cell::Float(1.5)),
        (Field::BooleanValue(false), "bool", Cell::Bool(false)),
        (
            Field::StringValue("1.50".into()),
            "numeric",
            Cell::Decimal("1.50".into()),
        ),
        (Field::StringValue("1.50".into()), "varchar", text("1.50")),
        (
            Field::BlobValue(Blob::new(vec![1u8, 2])),
            "varbyte",
            Cell::Bytes(vec![1, 2]),
        ),
    ];
    for (field, type_name, cell) in cases {
        assert_eq!(Cell::of(&field, type_name), cell, "{field:?} of {type_name}");
    }
    let labelled = ColumnMetadata::builder()
        .name("count")
        .label("images")
        .type_name("int8")
        .build();
    assert_eq!(Column::of(&labelled), column("images", "int8"));
    let named = ColumnMetadata::builder().name("Number").build();
    assert_eq!(Column::of(&named).name, "Number");
}
