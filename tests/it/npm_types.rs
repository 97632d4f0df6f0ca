//! The npm package's declaration of the request context (`crates/npm/js/context.d.ts`),
//! generated from the table of variables (`micromoment::context::PACKED_FIELDS`) in the
//! order of the context's JSON: this test fails when the file is not what the table
//! makes, and writes it with `UPDATE_EXPECT=1`. On the way it checks that every field
//! of the context's JSON has a row and that every row names a field of it, at most one
//! object deep (as packOptions reads them).

use micromoment::context::{
    Channel, Context, FieldKind, FieldMut, Keyword, PackedField, PACKED_FIELDS,
};
use serde_json::Value as Json;

const FILE: &str = "crates/npm/js/context.d.ts";

const HEADER: &str = "\
// Generated from the table of variables (src/context.rs) by tests/it/npm_types.rs: do
// not edit. After a change to the table, `UPDATE_EXPECT=1 cargo test -p micromoment-cli
// --test it npm_types` writes it again.
/** The request context, in the variable names of rules (`geo.city`, `device.type`, …). */
export interface RequestContext {
";

/// The TypeScript type of a field.
fn ts_type(field: &PackedField) -> String {
    let words = |words: &[&str]| {
        words
            .iter()
            .map(|w| format!("{w:?}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match field.kind {
        FieldKind::Text => "string".into(),
        FieldKind::Number => "number".into(),
        FieldKind::Flag | FieldKind::Switch => "boolean".into(),
        FieldKind::Query => "Record<string, string>".into(),
        FieldKind::Channel => words(&Channel::ALL.map(Keyword::as_str)),
        FieldKind::Keyword => match Context::default().field_by_tag(field.tag) {
            Some(FieldMut::Keyword(field)) => words(&field.words()),
            other => panic!("{}: {other:?}", field.name),
        },
    }
}

/// One member of an interface, with its doc comment if the table gives one.
fn member(out: &mut String, indent: &str, key: &str, field: &PackedField) {
    let doc = field.doc.trim();
    if !doc.is_empty() {
        out.push_str(&format!("{indent}/** {doc} */\n"));
    }
    out.push_str(&format!("{indent}{key}?: {};\n", ts_type(field)));
}

/// The declaration the table makes.
fn declaration() -> String {
    // Every field present, `prefetch` included (left out of the JSON when false).
    let context = Context {
        prefetch: true,
        ..Context::default()
    };
    let json = serde_json::to_value(&context).unwrap();
    let packed = |name: &str| PACKED_FIELDS.iter().find(|f| f.name == name);
    let mut out = String::from(HEADER);
    let mut declared = 0;
    for (key, value) in json.as_object().unwrap() {
        if let Some(field) = packed(key) {
            member(&mut out, "  ", key, field);
            declared += 1;
            continue;
        }
        let Json::Object(group) = value else {
            panic!("the context's field {key} has no row in the table of variables");
        };
        out.push_str(&format!("  {key}?: {{\n"));
        for inner in group.keys() {
            let name = format!("{key}.{inner}");
            let field = packed(&name).unwrap_or_else(|| {
                panic!("the context's field {name} has no row in the table of variables")
            });
            member(&mut out, "    ", inner, field);
            declared += 1;
        }
        out.push_str("  };\n");
    }
    out.push_str("}\n");
    assert_eq!(
        declared,
        PACKED_FIELDS.len(),
        "a packed field of the table is not a field of the context's JSON"
    );
    out
}

#[test]
fn the_npm_declaration_of_the_context_is_the_table_of_variables() {
    let expected = declaration();
    let path = crate::repo_path(FILE);
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual == expected {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    panic!(
        "{FILE} is not what the table of variables makes; run with UPDATE_EXPECT=1 to \
         write it:\n{expected}"
    );
}
