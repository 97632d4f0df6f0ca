//! Arbitrary JSON as a rule and as data: compiling gives a rule or an error, never a
//! panic; evaluating is total; and a rule whose worst case over the data is within the
//! work budget never runs out of fuel (the compile-time estimate is an upper bound).
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::rules::{compile, BoundedJsonSchema, Fuel, JsonData, JsonSchema, Limits};

fuzz_target!(|data: &[u8]| {
    // One document: `[rule, data]`, or a rule over null.
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let (rule, input) = match &json {
        serde_json::Value::Array(pair) if pair.len() == 2 => (&pair[0], pair[1].clone()),
        other => (other, serde_json::Value::Null),
    };
    if let Ok(compiled) = compile(rule, &JsonSchema, Limits::default()) {
        let data = JsonData::new(&input);
        let _ = compiled.eval(&data);
        let _ = compiled.matches(&data);
    }
    let schema = BoundedJsonSchema::of(&input);
    let checked = Limits { check_cost: true, ..Limits::default() };
    if let Ok(compiled) = compile(rule, &schema, checked) {
        let (steps, bytes) = compiled.worst_case(&schema);
        let fuel = Fuel::new(u64::MAX / 2, u64::MAX / 2);
        let _ = compiled.eval_with(&JsonData::new(&input), &fuel);
        let (used_steps, used_bytes) = fuel.used();
        assert!(used_steps <= steps && used_bytes <= bytes, "{rule}: {used_steps}/{steps} steps, {used_bytes}/{bytes} bytes");
        assert!(compiled.eval(&JsonData::new(&input)).is_ok(), "within the budget, never out of fuel");
    }
});
