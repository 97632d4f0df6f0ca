//! Compiling and evaluating a typical targeting rule (8 operators).
//!
//! Two data sources: a fixed-field context whose variables the compiler resolved to
//! indices (how the engine evaluates), and plain JSON looked up by path (how
//! `rule eval` and json-logic-js evaluate).

use criterion::{criterion_group, criterion_main, Criterion};
use micromoment::rules::{
    compile, Data, JsonData, JsonSchema, Limits, Schema, UnknownVariable, Value,
};
use serde_json::json;
use std::hint::black_box;

const FIELDS: [&str; 5] = [
    "page.path",
    "geo.country",
    "device.type",
    "intent.suv",
    "utm.source",
];

struct Fields;

impl Schema for Fields {
    type Var = usize;
    fn resolve(&self, path: &str) -> Result<usize, UnknownVariable> {
        FIELDS.iter().position(|f| *f == path).ok_or_default()
    }
}

trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, UnknownVariable>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, UnknownVariable> {
        self.ok_or_else(UnknownVariable::default)
    }
}

struct Context {
    path: String,
    country: String,
    device: &'static str,
    suv: f64,
}

impl Data for Context {
    type Var = usize;
    fn get(&self, var: &usize) -> Option<Value<'_>> {
        match var {
            0 => Some(Value::str(&self.path)),
            1 => Some(Value::str(&self.country)),
            2 => Some(Value::str(self.device)),
            3 => Some(Value::Number(self.suv)),
            _ => None,
        }
    }
    fn get_path(&self, path: &str) -> Option<Value<'_>> {
        Fields.resolve(path).ok().and_then(|v| self.get(&v))
    }
}

fn rules(c: &mut Criterion) {
    let rule = json!({"and": [
        {"glob": [{"var": "page.path"}, "/models/**"]},
        {"in": [{"var": "geo.country"}, ["FR", "DE", "IT", "ES"]]},
        {"!=": [{"var": "device.type"}, "bot"]},
        {"or": [{">=": [{"var": "intent.suv"}, 30]}, {"==": [{"var": "utm.source"}, "newsletter"]}]}
    ]});
    c.bench_function("rules/compile typical rule", |b| {
        b.iter(|| compile(black_box(&rule), &Fields, Limits::default()))
    });
    let compiled = compile(&rule, &Fields, Limits::default()).expect("compiles");
    let ctx = Context {
        path: "/models/suv/x5".into(),
        country: "IT".into(),
        device: "mobile",
        suv: 42.0,
    };
    assert!(compiled.matches(&ctx));
    c.bench_function("rules/eval typical rule, resolved fields", |b| {
        b.iter(|| black_box(&compiled).matches(black_box(&ctx)))
    });
    let json_rule = compile(&rule, &JsonSchema, Limits::default()).expect("compiles");
    let data = JsonData::new(
        &json!({"page": {"path": "/models/suv/x5"}, "geo": {"country": "IT"},
        "device": {"type": "mobile"}, "intent": {"suv": 42}}),
    );
    assert!(json_rule.matches(&data));
    c.bench_function("rules/eval typical rule, JSON data", |b| {
        b.iter(|| black_box(&json_rule).matches(black_box(&data)))
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
