//! The warehouse's views, from Redshift SQL to SQLite SQL: parsed as
//! Redshift, rewritten on the syntax tree, printed for SQLite.
//!
//! The rewrites, each where the two dialects say the same thing differently:
//!
//! | Redshift | SQLite |
//! |---|---|
//! | `"schema".name` | `name` (one namespace; two schemas' same name is an error) |
//! | `CREATE OR REPLACE VIEW … WITH NO SCHEMA BINDING` | `CREATE VIEW …` |
//! | `CAST(x AS TIMESTAMP)` | `datetime(x)` |
//! | `TIMESTAMP 'epoch' + x * INTERVAL '1 second'` | `datetime(x, 'unixepoch')` |
//! | `EXTRACT(EPOCH FROM GETDATE())` | the evaluation time, epoch seconds |
//! | `a.s.f` (field `f` of struct column `s`) | `json_extract(a.s, '$.f')` |
//! | `TRUNC(ts)` | `date(ts)` |
//! | `DATE_TRUNC('hour', ts)` | `strftime('%Y-%m-%d %H:00:00', ts)` |
//! | `STRTOL(text, base)` | `strtol(text, base)`, a function the local warehouse registers (Rust's `i64::from_str_radix`) |
//! | `DROP VIEW IF EXISTS "schema".name` | `DROP VIEW IF EXISTS name` |
//!
//! `&`, `|` and `>>` on integers are the same in both; the views parenthesise
//! every one, as their precedence differs.
//!
//! Everything else must mean the same in both ([`same_in_both`]); anything
//! not known to is an error naming it, so a view is never evaluated with a
//! construct SQLite reads differently.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectType, Statement, TimezoneInfo, UnaryOperator, Value,
    VisitMut, VisitorMut, WindowType,
};
use sqlparser::dialect::RedshiftSqlDialect;
use sqlparser::parser::Parser;

use super::WarehouseError;
use super::script::EventsTable;

/// Statements that only matter in Redshift, by their leading keywords: the
/// first two are beyond sqlparser (`CREATE EXTERNAL SCHEMA`, and Redshift's
/// `DISTSTYLE`/`SORTKEY` table options).
const REDSHIFT_ONLY: [(&str, &str); 5] = [
    (
        "CREATE EXTERNAL SCHEMA",
        "maps the Glue database, which the local events table stands for",
    ),
    ("CREATE TABLE", "a table in Redshift's storage that no view reads"),
    (
        "DROP TABLE",
        "drops a table in Redshift's storage that no view reads",
    ),
    ("CREATE SCHEMA", "SQLite keeps every view in one namespace"),
    (
        "SELECT",
        "the operator's check that the views answer; the views themselves are evaluated here",
    ),
];

/// Functions that take and give the same in Redshift and SQLite.
const SAME_FUNCTIONS: [&str; 7] = ["COUNT", "SUM", "MIN", "MAX", "COALESCE", "REPLACE", "ROW_NUMBER"];

/// `DATE_TRUNC`'s units and the `strftime` format that truncates to each.
const DATE_TRUNC_FORMATS: [(&str, &str); 6] = [
    ("second", "%Y-%m-%d %H:%M:%S"),
    ("minute", "%Y-%m-%d %H:%M:00"),
    ("hour", "%Y-%m-%d %H:00:00"),
    ("day", "%Y-%m-%d 00:00:00"),
    ("month", "%Y-%m-01 00:00:00"),
    ("year", "%Y-01-01 00:00:00"),
];

/// One statement of the script, translated.
#[derive(Clone, Debug, PartialEq)]
pub enum Translated {
    /// A view, as SQLite's `CREATE VIEW`.
    View { name: String, sql: String },
    /// A view dropped, as SQLite's `DROP VIEW`.
    Drop { name: String, sql: String },
    /// A statement with no local counterpart, and why.
    Skipped {
        keywords: &'static str,
        why: &'static str,
    },
}

/// Translates the script's statements in order.
pub struct Translator<'a> {
    table: &'a EventsTable,
    /// `GETDATE()`, as epoch seconds.
    now: i64,
    /// Each unqualified name and the qualified one it stands for.
    names: BTreeMap<String, String>,
}

impl<'a> Translator<'a> {
    pub fn new(table: &'a EventsTable, now: i64) -> Self {
        Self {
            table,
            now,
            names: BTreeMap::new(),
        }
    }

    pub fn translate(&mut self, statement: &str) -> Result<Translated, WarehouseError> {
        let words: Vec<String> = statement
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        let leading = words.join(" ");
        if let Some((keywords, why)) = REDSHIFT_ONLY
            .iter()
            .find(|(keywords, _)| leading == *keywords || leading.starts_with(&format!("{keywords} ")))
        {
            return Ok(Translated::Skipped { keywords, why });
        }
        let parsed =
            Parser::parse_sql(&RedshiftSqlDialect {}, statement).map_err(|source| WarehouseError::Parse {
                statement: statement.to_owned(),
                source,
            })?;
        let [mut parsed] = <[Statement; 1]>::try_from(parsed)
            .map_err(|_| self.refuse("more than one statement", statement))?;
        if let Statement::Drop {
            object_type: ObjectType::View,
            if_exists: true,
            names,
            cascade: false,
            restrict: false,
            purge: false,
            temporary: false,
            table: None,
        } = &mut parsed
            && names.len() == 1
        {
            let name = self.unqualify(&mut names[0], statement)?;
            return Ok(Translated::Drop {
                name,
                sql: parsed.to_string(),
            });
        }
        let name = match &mut parsed {
            Statement::CreateView {
                or_alter: false,
                materialized: false,
                secure: false,
                columns,
                options,
                cluster_by,
                comment: None,
                if_not_exists: false,
                temporary: false,
                to: None,
                params: None,
                name,
                or_replace,
                with_no_schema_binding,
                ..
            } if columns.is_empty() && cluster_by.is_empty() && options.to_string().is_empty() => {
                // SQLite replaces a view by dropping it; late binding is
                // what SQLite does anyway.
                *or_replace = false;
                *with_no_schema_binding = false;
                self.unqualify(name, statement)?
            }
            _ => {
                return Err(self.refuse(
                    "a statement other than a plain CREATE [OR REPLACE] VIEW",
                    statement,
                ));
            }
        };
        let mut rewriter = Rewriter {
            translator: self,
            statement,
        };
        if let ControlFlow::Break(error) = parsed.visit(&mut rewriter) {
            return Err(error);
        }
        Ok(Translated::View {
            name,
            sql: parsed.to_string(),
        })
    }

    /// Drops `name`'s schema, in place; returns the name left.
    fn unqualify(&mut self, name: &mut ObjectName, statement: &str) -> Result<String, WarehouseError> {
        let qualified = name.to_string();
        let last = name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .cloned()
            .ok_or_else(|| self.refuse(&format!("the name {qualified}"), statement))?;
        let known = self
            .names
            .entry(last.value.clone())
            .or_insert_with(|| qualified.clone());
        if *known != qualified {
            return Err(WarehouseError::Untranslatable {
                construct: format!("{qualified} and {known}: one name in SQLite's single namespace"),
                statement: statement.to_owned(),
            });
        }
        *name = ObjectName::from(vec![last.clone()]);
        Ok(last.value)
    }

    fn refuse(&self, construct: &str, statement: &str) -> WarehouseError {
        WarehouseError::Untranslatable {
            construct: construct.to_owned(),
            statement: statement.to_owned(),
        }
    }

    /// The rewrite of `expr` itself, if it is one of the table's.
    fn rewrite(&self, expr: &Expr, statement: &str) -> Result<Option<Expr>, WarehouseError> {
        Ok(match expr {
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type: DataType::Timestamp(None, TimezoneInfo::None),
                format: None,
            } => Some(call("datetime", vec![(**expr).clone()])),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Plus,
                right,
            } if is_epoch(left) => match &**right {
                Expr::BinaryOp {
                    left: seconds,
                    op: BinaryOperator::Multiply,
                    right: unit,
                } if is_one_second(unit) => {
                    Some(call("datetime", vec![(**seconds).clone(), text("unixepoch")]))
                }
                _ => None,
            },
            Expr::Extract {
                field: DateTimeField::Epoch,
                expr,
                ..
            } if is_call(expr, "GETDATE", 0) => Some(Expr::value(Value::Number(self.now.to_string(), false))),
            Expr::CompoundIdentifier(parts) if parts.len() == 3 => Some(self.struct_field(parts, statement)?),
            Expr::Function(function) if is_call(expr, "STRTOL", 2) => {
                Some(call("strtol", arguments(function).into_iter().cloned().collect()))
            }
            Expr::Function(function) if is_call(expr, "TRUNC", 1) => {
                Some(call("date", arguments(function).into_iter().cloned().collect()))
            }
            Expr::Function(function) if is_call(expr, "DATE_TRUNC", 2) => {
                let [unit, timestamp] =
                    <[&Expr; 2]>::try_from(arguments(function)).unwrap_or_else(|_| unreachable!());
                let format = string_literal(unit).and_then(|unit| {
                    DATE_TRUNC_FORMATS
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                        .map(|(_, format)| *format)
                });
                let format =
                    format.ok_or_else(|| self.refuse(&format!("DATE_TRUNC to {unit}"), statement))?;
                Some(call("strftime", vec![text(format), timestamp.clone()]))
            }
            _ => None,
        })
    }

    /// `alias.column.field` of a struct column of the events table.
    fn struct_field(&self, parts: &[Ident], statement: &str) -> Result<Expr, WarehouseError> {
        let unknown = || {
            self.refuse(
                &format!(
                    "{} (not a field of a struct column)",
                    Expr::CompoundIdentifier(parts.to_vec())
                ),
                statement,
            )
        };
        let (field, column) = (&parts[2].value, &parts[1].value);
        let fields = self
            .table
            .columns
            .iter()
            .find(|c| c.name == *column)
            .and_then(|c| c.struct_fields())
            .ok_or_else(unknown)?;
        if !fields.contains(&field.as_str()) {
            return Err(unknown());
        }
        Ok(call(
            "json_extract",
            vec![
                Expr::CompoundIdentifier(parts[..2].to_vec()),
                text(&format!("$.{field}")),
            ],
        ))
    }
}

/// Whether `expr` means the same in Redshift and SQLite, looking at the
/// node only (its children are checked on their own).
fn same_in_both(expr: &Expr) -> bool {
    use BinaryOperator as B;
    match expr {
        Expr::Identifier(_) | Expr::Nested(_) | Expr::IsNull(_) | Expr::IsNotNull(_) => true,
        Expr::CompoundIdentifier(parts) => parts.len() == 2,
        Expr::Value(value) => matches!(
            value.value,
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Null
        ),
        Expr::UnaryOp { op, .. } => matches!(op, UnaryOperator::Not | UnaryOperator::Minus),
        Expr::BinaryOp { op, .. } => matches!(
            op,
            B::Eq
                | B::NotEq
                | B::Lt
                | B::LtEq
                | B::Gt
                | B::GtEq
                | B::And
                | B::Or
                | B::Plus
                | B::Minus
                | B::Multiply
                | B::StringConcat
                | B::BitwiseAnd
                | B::BitwiseOr
                | B::PGBitwiseShiftRight
        ),
        // `SUBSTRING(x, start, length)`: SQLite has the comma form only.
        Expr::Substring { special: true, .. } => true,
        Expr::Function(function) => {
            let window = match &function.over {
                None => true,
                Some(WindowType::WindowSpec(spec)) => {
                    spec.window_name.is_none() && spec.window_frame.is_none()
                }
                Some(WindowType::NamedWindow(_)) => false,
            };
            window
                && matches!(function.parameters, FunctionArguments::None)
                && function.filter.is_none()
                && function.null_treatment.is_none()
                && function.within_group.is_empty()
                && SAME_FUNCTIONS.iter().any(|name| is_named(function, name))
        }
        _ => false,
    }
}

/// Rewrites each expression before its children (the rewrite's inputs are
/// then rewritten in turn), and refuses what it does not know.
struct Rewriter<'t, 'a> {
    translator: &'t mut Translator<'a>,
    statement: &'t str,
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = WarehouseError;

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Self::Break> {
        match self.translator.unqualify(relation, self.statement) {
            Ok(_) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        match self.translator.rewrite(expr, self.statement) {
            Ok(Some(rewritten)) => *expr = rewritten,
            Ok(None) if same_in_both(expr) => {}
            Ok(None) => return ControlFlow::Break(self.translator.refuse(&construct(expr), self.statement)),
            Err(error) => return ControlFlow::Break(error),
        }
        ControlFlow::Continue(())
    }
}

/// An expression named for an error: its text and its kind.
fn construct(expr: &Expr) -> String {
    let debug = format!("{expr:?}");
    let kind = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    format!("`{expr}` ({kind})")
}

fn is_named(function: &Function, name: &str) -> bool {
    function.name.to_string().eq_ignore_ascii_case(name)
}

fn arguments(function: &Function) -> Vec<&Expr> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A plain call of `name` with `count` positional arguments.
fn is_call(expr: &Expr, name: &str, count: usize) -> bool {
    matches!(expr, Expr::Function(function)
        if is_named(function, name)
            && function.over.is_none()
            && function.filter.is_none()
            && matches!(&function.args, FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() && list.args.len() == count)
            && arguments(function).len() == count)
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// `TIMESTAMP 'epoch'`.
fn is_epoch(expr: &Expr) -> bool {
    matches!(expr, Expr::TypedString(typed)
        if matches!(typed.data_type, DataType::Timestamp(None, TimezoneInfo::None))
            && matches!(&typed.value.value, Value::SingleQuotedString(v) if v.eq_ignore_ascii_case("epoch")))
}

/// `INTERVAL '1 second'`.
fn is_one_second(expr: &Expr) -> bool {
    matches!(expr, Expr::Interval(interval)
        if interval.leading_field.is_none()
            && interval.last_field.is_none()
            && string_literal(&interval.value).is_some_and(|v| v.eq_ignore_ascii_case("1 second")))
}

fn text(value: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(value.to_owned()))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
