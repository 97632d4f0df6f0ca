//! The rules engine: the JSON Logic conformance suite, the extensions, compile errors.

use micromoment::rules::{
    compile, BoundedJsonSchema, CompileErrorKind, Fuel, JsonData, JsonSchema, Limits,
};
use serde_json::{json, Value as Json};

/// Compiles `rule` over plain JSON and evaluates it against `data`.
fn eval(rule: &Json, data: &Json) -> Result<Json, String> {
    let compiled = compile(rule, &JsonSchema, Limits::default()).map_err(|e| e.to_string())?;
    compiled
        .eval(&JsonData::new(data))
        .map(|v| v.to_json())
        .map_err(|e| e.to_string())
}

#[track_caller]
fn check(rule: Json, data: Json, expected: Json) {
    match eval(&rule, &data) {
        Ok(actual) => assert_eq!(actual, expected, "rule {rule} on {data}"),
        Err(e) => panic!("rule {rule} did not compile: {e}"),
    }
}

#[track_caller]
fn check_error(rule: Json, expected: &str) {
    match eval(&rule, &Json::Null) {
        Ok(value) => panic!("rule {rule} compiled and gave {value}, expected error {expected:?}"),
        Err(e) => assert_eq!(e, expected, "rule {rule}"),
    }
}

#[test]
fn jsonlogic_conformance_suite() {
    // Every case of the shared suite runs; there are no exclusions.
    let suite = crate::read_json("tests/conformance/jsonlogic/compatible.json");
    let cases = suite.as_array().expect("the suite is an array");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases {
        // Strings are section headings.
        let Some(case) = case.as_object() else {
            continue;
        };
        ran += 1;
        let rule = &case["rule"];
        let data = case.get("data").cloned().unwrap_or(Json::Null);
        let expected = &case["result"];
        // Conditions (`when`) decide truthiness by a shorter path: it must agree.
        if let Ok(compiled) = compile(rule, &JsonSchema, Limits::default()) {
            let data = JsonData::new(&data);
            if Ok(compiled.matches(&data)) != compiled.eval(&data).map(|v| v.truthy()) {
                failures.push(format!("{rule}: matches disagrees with eval's truthiness"));
            }
        }
        match eval(rule, &data) {
            Ok(actual) if numbers_equal(&actual, expected) => {}
            Ok(actual) => failures.push(format!(
                "{rule} on {data}: expected {expected}, got {actual}"
            )),
            Err(e) => failures.push(format!("{rule}: did not compile: {e}")),
        }
    }
    assert_eq!(ran, 278, "the suite has 278 cases");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// JSON equality where `1` and `1.0` are the same number, as in JavaScript.
fn numbers_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| numbers_equal(x, y))
        }
        _ => a == b,
    }
}

// Differences from json-logic-js 2.0.5 that its differential test
// (tests/e2e/jsonlogic.test.mjs) found, each pinned to json-logic-js's answer.

#[test]
fn times_with_one_argument_returns_it_unconverted() {
    // json-logic-js multiplies with a `reduce` that has no initial value.
    check(json!({"*": ["3"]}), Json::Null, json!("3"));
    check(json!({"*": [[2]]}), Json::Null, json!([2]));
    check(json!({"*": false}), Json::Null, json!(false));
    check(
        json!({"*": [{"var": "a"}]}),
        json!({"a": {"b": 1}}),
        json!({"b": 1}),
    );
    check(json!({"*": ["3", "2"]}), Json::Null, json!(6));
}

#[test]
fn var_reads_javascript_properties_of_arrays_and_strings() {
    check(json!({"var": "s.length"}), json!({"s": "abc"}), json!(3));
    check(
        json!({"var": "l.length"}),
        json!({"l": [1, 2, 3]}),
        json!(3),
    );
    check(json!({"var": "s.1"}), json!({"s": "abc"}), json!("b"));
    check(json!({"var": "s.3"}), json!({"s": "abc"}), Json::Null);
    check(json!({"var": "n.length"}), json!({"n": 5}), Json::Null);
    check(
        json!({"var": "o.length"}),
        json!({"o": {"length": 7}}),
        json!(7),
    );
    check(
        json!({"map": [["ab", "c"], {"var": "0"}]}),
        Json::Null,
        json!(["a", "c"]),
    );
    check(json!({"var": "0"}), json!("xyz"), json!("x"));
    // Strings count UTF-16 units, as JavaScript does.
    check(json!({"var": "s.length"}), json!({"s": "😀!"}), json!(3));
    check(json!({"var": "s.2"}), json!({"s": "😀!"}), json!("!"));
    // Half an emoji is a lone surrogate in JavaScript; a Rust string holds U+FFFD (a
    // listed quirk of the differential test).
    check(
        json!({"var": "s.0"}),
        json!({"s": "😀!"}),
        json!("\u{fffd}"),
    );
}

#[test]
fn var_indexes_arrays_by_canonical_numbers_only() {
    check(json!({"var": "l.1"}), json!({"l": [1, 2]}), json!(2));
    check(json!({"var": "l.01"}), json!({"l": [1, 2]}), Json::Null);
    check(json!({"var": "l.+1"}), json!({"l": [1, 2]}), Json::Null);
    check(json!({"missing": ["01"]}), json!([1, 2]), json!(["01"]));
}

#[test]
fn computed_var_names_an_empty_array_as_the_member_named_empty() {
    // json-logic-js tests the name for "" before turning it into a string.
    check(json!({"var": [[]]}), json!({"": 5, "a": 1}), json!(5));
    check(json!({"var": [[]]}), json!({"a": 1}), Json::Null);
    check(json!({"var": {"merge": []}}), json!({"": 5}), json!(5));
    check(json!({"var": [""]}), json!({"a": 1}), json!({"a": 1}));
}

#[test]
fn missing_looks_each_key_up_as_var_does() {
    // null and "" name the whole data.
    check(json!({"missing": [null]}), json!(0), json!([]));
    check(json!({"missing": [""]}), Json::Null, json!([""]));
    check(json!({"missing": [["0"]]}), json!("1"), json!([]));
    // An array key is `var`'s arguments: a name and a default.
    check(
        json!({"missing": ["x", ["b", 1], ["c"], []]}),
        json!({"c": 2}),
        json!(["x"]),
    );
    check(
        json!({"missing": ["x", ["b", ""]]}),
        json!({}),
        json!(["x", ["b", ""]]),
    );
}

#[test]
fn missing_some_reads_its_options_as_missing_does() {
    // A first option that is an array is the list of keys; the count is the options'.
    check(
        json!({"missing_some": [1, [["a", "b"], "c"]]}),
        json!({}),
        json!(["a", "b"]),
    );
    // Anything but an array is the one key; a string counts its length.
    check(json!({"missing_some": [1, "abc"]}), json!({}), json!([]));
    check(json!({"missing_some": [1, 5]}), json!({}), json!([5]));
    check(
        json!({"missing_some": [1, [null, "a"]]}),
        json!({"b": 1}),
        json!([]),
    );
}

#[test]
fn reduce_body_reads_current_and_accumulator_as_one_object() {
    check(
        json!({"reduce": [[1, 2], {"var": ""}, 0]}),
        Json::Null,
        json!({"current": 2, "accumulator": {"current": 1, "accumulator": 0}}),
    );
    check(
        json!({"reduce": [[1, 2], {"missing": ["", "current", "x"]}, 0]}),
        Json::Null,
        json!(["x"]),
    );
    check(
        json!({"reduce": [[1], {"cat": [{"var": ""}, "!"]}, 0]}),
        Json::Null,
        json!("[object Object]!"),
    );
}

#[test]
fn reduce_objects_and_nested_keys_stay_within_the_worst_case() {
    // The object the body of `reduce` reads copies the accumulator, and `missing_some`
    // may look up the keys of its first option: the compile-time worst case counts both.
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let data = json!({"list": [[1, 2, 3], "abcdef", [4, 5]], "s": "xyz", "keys": [keys]});
    let schema = BoundedJsonSchema::of(&data);
    for rule in [
        json!({"reduce": [{"var": "list"}, {"var": ""}, 0]}),
        json!({"reduce": [{"var": "list"}, {"merge": [{"var": ""}, {"var": "current"}]}, []]}),
        json!({"reduce": [{"var": "list"}, {"var": [{"cat": []}]}, {"var": "list"}]}),
        json!({"reduce": [{"var": "list"}, {"map": [{"merge": [{"var": ""}]}, {"var": "accumulator"}]}, 1]}),
        json!({"map": [{"var": "list"}, {"reduce": [{"var": ""}, {"var": ""}, {"var": ""}]}]}),
        json!({"missing_some": [1, {"var": "keys"}]}),
        json!({"missing_some": [1, [keys]]}),
    ] {
        let compiled = compile(&rule, &schema, Limits::default()).expect("compiles");
        let (steps, bytes) = compiled.worst_case(&schema);
        let fuel = Fuel::new(u64::MAX / 2, u64::MAX / 2);
        let _ = compiled.eval_with(&JsonData::new(&data), &fuel);
        let (used_steps, used_bytes) = fuel.used();
        assert!(used_bytes > 0, "{rule}: builds something");
        assert!(
            used_steps <= steps && used_bytes <= bytes,
            "{rule}: used {used_steps} steps, {used_bytes} bytes; worst case {steps}, {bytes}"
        );
    }
}

#[test]
fn substr_negative_lengths_and_utf16_units_as_json_logic_js() {
    // A negative length stops that many units before the end, counted from the start…
    check(
        json!({"substr": ["abcdef", 1, -1]}),
        Json::Null,
        json!("bcde"),
    );
    check(
        json!({"substr": ["abcdef", 1, -1.5]}),
        Json::Null,
        json!("bcd"),
    );
    check(json!({"substr": ["日本", -2, -1.5]}), Json::Null, json!(""));
    // …and one that is not a number concatenates instead of adding: nothing.
    check(json!({"substr": ["0x1f", 1, "-1"]}), Json::Null, json!(""));
    check(json!({"substr": ["abc", 1, [-1]]}), Json::Null, json!(""));
    check(json!({"substr": ["abc", 1, "2"]}), Json::Null, json!("bc"));
    check(json!({"substr": ["😀!", 2]}), Json::Null, json!("!"));
    check(json!({"substr": ["😀!", 0, 2]}), Json::Null, json!("😀"));
    check(
        json!({"substr": ["😀!", 1]}),
        Json::Null,
        json!("\u{fffd}!"),
    );
}

#[test]
fn in_an_empty_string_is_false() {
    check(json!({"in": ["", ""]}), Json::Null, json!(false));
    check(json!({"in": ["", "a"]}), Json::Null, json!(true));
}

#[test]
fn the_same_data_object_equals_itself() {
    let data = json!({"a": [[1]]});
    check(
        json!({"==": [{"var": "a"}, {"var": "a"}]}),
        data.clone(),
        json!(true),
    );
    check(
        json!({"===": [{"var": "a"}, {"var": "a"}]}),
        data.clone(),
        json!(true),
    );
    check(
        json!({"!=": [{"var": "a"}, {"var": "a"}]}),
        data.clone(),
        json!(false),
    );
    check(
        json!({"!==": [{"var": "a"}, {"var": "a"}]}),
        data.clone(),
        json!(false),
    );
    check(
        json!({"in": [{"var": "a.0"}, {"var": "a"}]}),
        data.clone(),
        json!(true),
    );
    // A rule's own arrays are new each time, and so are built lists.
    check(json!({"==": [[1], [1]]}), Json::Null, json!(false));
    check(
        json!({"==": [{"var": "a"}, {"merge": [{"var": "a"}]}]}),
        data,
        json!(false),
    );
}

#[test]
fn strings_compare_by_utf16_units() {
    // U+FF61 is above the surrogates that encode an emoji, below its code point.
    check(json!({"<": ["\u{ff61}", "😀"]}), Json::Null, json!(false));
    check(json!({">": ["\u{ff61}", "😀"]}), Json::Null, json!(true));
    check(json!({"<": ["a", "😀"]}), Json::Null, json!(true));
}

#[test]
fn plus_times_max_and_min_treat_minus_zero_as_javascript() {
    // `parseFloat(String(-0))` is 0, so `+` and `*` lose the sign.
    let below_zero = |x: Json| json!({"<": [{"/": [1, x]}, 0]});
    check(
        below_zero(json!({"*": [{"-": [0]}, 5]})),
        Json::Null,
        json!(false),
    );
    check(
        below_zero(json!({"+": [{"-": [0]}]})),
        Json::Null,
        json!(false),
    );
    // `Math.max` puts 0 above -0.
    check(
        below_zero(json!({"max": [{"-": [0]}, 0]})),
        Json::Null,
        json!(false),
    );
    check(
        below_zero(json!({"max": [0, {"-": [0]}]})),
        Json::Null,
        json!(false),
    );
    check(
        below_zero(json!({"min": [0, {"-": [0]}]})),
        Json::Null,
        json!(true),
    );
    check(
        below_zero(json!({"max": [{"-": [0]}]})),
        Json::Null,
        json!(true),
    );
}

#[test]
fn glob_matches_path_segments() {
    let cases = [
        ("/models/**", "/models/suv/x5", true),
        ("/models/**", "/models", true),
        ("/models/**", "/models/", true),
        ("/models/**", "/modelsx/suv", false),
        ("/models/*", "/models/suv", true),
        ("/models/*", "/models/suv/x5", false),
        ("/models/*", "/models", false),
        ("/models/*", "/models/", false),
        ("**/checkout", "/shop/cart/checkout", true),
        ("**/checkout", "/checkout", true),
        ("**/checkout", "/checkout/done", false),
        ("/**", "/", true),
        ("/**", "", true),
        ("**", "/anything/at/all", true),
        ("/", "/", true),
        ("/", "/home", false),
        ("", "", true),
        ("/models/**/specs", "/models/suv/x5/specs", true),
        ("/models/**/specs", "/models/specs", true),
        ("/models/**/specs", "/models/suv/x5/price", false),
        ("/models/*/specs", "/models/suv/specs", true),
        ("/models/suv-*", "/models/suv-x5", true),
        ("/models/suv-*", "/models/sedan-a4", false),
        ("/models/*-x5/**", "/models/suv-x5/gallery/1", true),
        ("/a/**/b/**/c", "/a/x/b/y/z/c", true),
        ("/a/**/b/**/c", "/a/x/c/y/b", false),
        ("/Models/**", "/models/suv", false),
        ("/models//suv", "/models/suv/", true),
    ];
    for (pattern, path, expected) in cases {
        check(
            json!({"glob": [path, pattern]}),
            Json::Null,
            json!(expected),
        );
    }
    // Non-string subjects never match.
    check(
        json!({"glob": [{"var": "n"}, "/**"]}),
        json!({"n": 5}),
        json!(false),
    );
    check(
        json!({"glob": [{"var": "missing"}, "**"]}),
        json!({}),
        json!(false),
    );
    check(json!({"glob": [["/a"], "**"]}), Json::Null, json!(false));
}

#[test]
fn starts_with_and_ends_with() {
    check(
        json!({"starts_with": ["newsletter-2026", "newsletter"]}),
        Json::Null,
        json!(true),
    );
    check(
        json!({"starts_with": ["news", "newsletter"]}),
        Json::Null,
        json!(false),
    );
    check(json!({"starts_with": ["abc", ""]}), Json::Null, json!(true));
    check(
        json!({"ends_with": ["/checkout", "out"]}),
        Json::Null,
        json!(true),
    );
    check(json!({"ends_with": ["", "x"]}), Json::Null, json!(false));
    check(
        json!({"starts_with": [12345, "12"]}),
        Json::Null,
        json!(false),
    );
    check(
        json!({"ends_with": [{"var": "u"}, "@acme.com"]}),
        json!({"u": "jo@acme.com"}),
        json!(true),
    );
    check(
        json!({"ends_with": [{"var": "u"}, "@acme.com"]}),
        json!({}),
        json!(false),
    );
}

#[test]
fn sem_ver_compares_as_flagd_does() {
    let cases = [
        ("1.2.3", "=", "1.2.3", true),
        ("v1.2.3", "=", "1.2.3", true),
        ("1.2.3+build.5", "=", "1.2.3", true),
        ("1.2.3", "!=", "1.2.4", true),
        ("1.2.3", "<", "1.10.0", true),
        ("1.10.0", ">", "1.9.9", true),
        ("2.0.0", ">=", "2.0.0", true),
        ("2.0.0", "<=", "1.99.99", false),
        ("1.0.0-alpha", "<", "1.0.0", true),
        ("1.0.0-alpha", "<", "1.0.0-alpha.1", true),
        ("1.0.0-alpha.1", "<", "1.0.0-alpha.beta", true),
        ("1.0.0-beta.2", "<", "1.0.0-beta.11", true),
        ("1.0.0-rc.1", ">", "1.0.0-beta.11", true),
        ("1.4.0", "^", "1.2.0", true),
        ("2.0.0", "^", "1.2.0", false),
        ("1.2.9", "~", "1.2.0", true),
        ("1.3.0", "~", "1.2.0", false),
        ("2", "=", "2.0.0", true),
        ("2.1", ">", "2.0.9", true),
        ("01.2.3", "=", "1.2.3", false),
        ("1.2.3.4", "=", "1.2.3", false),
        ("banana", "<", "1.0.0", false),
        ("banana", "!=", "1.0.0", false),
        ("", ">=", "0.0.0", false),
    ];
    for (version, op, target, expected) in cases {
        check(
            json!({"sem_ver": [version, op, target]}),
            Json::Null,
            json!(expected),
        );
    }
    check(
        json!({"sem_ver": [{"var": "v"}, ">=", "2.0.0"]}),
        json!({"v": 3}),
        json!(true),
    );
    check(
        json!({"sem_ver": [{"var": "v"}, ">=", "2.0.0"]}),
        json!({}),
        json!(false),
    );
    check(
        json!({"sem_ver": [true, "=", "1.0.0"]}),
        Json::Null,
        json!(false),
    );
}

#[test]
fn seen_and_in_segment_read_the_visitor() {
    let data = json!({"seen": {"brand-film": 2}, "segments": ["vip", "newsletter"]});
    check(json!({"seen": "brand-film"}), data.clone(), json!(2));
    check(json!({"seen": "test-drive"}), data.clone(), json!(0));
    check(
        json!({">=": [{"seen": "brand-film"}, 1]}),
        data.clone(),
        json!(true),
    );
    check(json!({"in_segment": "vip"}), data.clone(), json!(true));
    check(json!({"in_segment": "vi"}), data.clone(), json!(false));
    check(json!({"in_segment": "vip"}), json!({}), json!(false));
    check(json!({"in_segment": 1}), data, json!(false));
}

#[test]
fn compile_errors_name_the_node() {
    check_error(
        json!({"gob": ["/a", "/b"]}),
        r#"unknown operator "gob" (did you mean "glob"?)"#,
    );
    check_error(
        json!({"and": [true, {"==": [1]}]}),
        r#"and[1].==: "==" takes 2 arguments, got 1"#,
    );
    check_error(
        json!({"and": [{"frobnicate": 1}]}),
        r#"and[0]: unknown operator "frobnicate""#,
    );
    check_error(
        json!({"glob": ["/a", {"var": "p"}]}),
        r#"glob[1]: "glob": the pattern must be a literal string"#,
    );
    check_error(
        json!({"sem_ver": ["1.0.0", "=>", "1.0.0"]}),
        r#"sem_ver[1]: "sem_ver": unknown operator "=>", expected one of = != < <= > >= ^ ~"#,
    );
    check_error(
        json!({"sem_ver": ["1.0.0", ">", "one"]}),
        r#"sem_ver[2]: "sem_ver": "one" is not a semantic version"#,
    );
    check_error(
        json!({"seen": {"var": "x"}}),
        r#"seen: "seen": the content id must be a literal string"#,
    );
    check_error(
        json!({"map": [[1]]}),
        r#"map: "map" takes 2 arguments, got 1"#,
    );
    let mut deep = json!(true);
    for _ in 0..40 {
        deep = json!({"!": [deep]});
    }
    let err = compile(&deep, &JsonSchema, Limits::default()).expect_err("too deep");
    assert_eq!(err.kind, CompileErrorKind::TooDeep { limit: 32 });
    let wide = Json::Array((0..5000).map(|i| json!(i)).collect());
    let err = compile(&wide, &JsonSchema, Limits::default()).expect_err("too large");
    assert_eq!(err.kind, CompileErrorKind::TooLarge { limit: 4096 });
}

#[test]
fn unknown_variables_are_compile_errors_with_a_schema() {
    use micromoment::rules::{Schema, UnknownVariable};
    struct Fields;
    impl Schema for Fields {
        type Var = usize;
        fn resolve(&self, path: &str) -> Result<usize, UnknownVariable> {
            const NAMES: [&str; 3] = ["geo.country", "geo.city", "segments"];
            NAMES
                .iter()
                .position(|n| *n == path)
                .ok_or_else(|| UnknownVariable {
                    suggestion: micromoment::did_you_mean(path, NAMES).map(str::to_owned),
                })
        }
    }
    let err = compile(
        &json!({"==": [{"var": "geo.contry"}, "FR"]}),
        &Fields,
        Limits::default(),
    )
    .expect_err("unknown");
    assert_eq!(
        err.to_string(),
        r#"==[0].var: unknown variable "geo.contry" (did you mean "geo.country"?)"#
    );
    // Inside map/filter/reduce, `var` reads the element, not the schema.
    assert!(compile(
        &json!({"some": [{"var": "segments"}, {"==": [{"var": ""}, "vip"]}]}),
        &Fields,
        Limits::default()
    )
    .is_ok());
    let err = compile(&json!({"in_segment": "vip"}), &Fields, Limits::default());
    assert!(err.is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const OPERATORS: &[&str] = &[
        "var",
        "if",
        "?:",
        "==",
        "===",
        "!=",
        "!==",
        "!",
        "!!",
        "or",
        "and",
        "<",
        "<=",
        ">",
        ">=",
        "max",
        "min",
        "+",
        "-",
        "*",
        "/",
        "%",
        "map",
        "filter",
        "reduce",
        "all",
        "none",
        "some",
        "merge",
        "in",
        "cat",
        "substr",
        "missing",
        "missing_some",
        "log",
        "glob",
        "starts_with",
        "ends_with",
        "sem_ver",
        "seen",
        "in_segment",
        "nope",
    ];

    fn leaf() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            (-1000i64..1000).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "",
                "a",
                "a.b",
                "0",
                "1.5",
                "x",
                "current",
                "accumulator",
                "/models/**",
                "1.2.3",
                ">=",
                "é",
                "**"
            ])
            .prop_map(|s| json!(s)),
        ]
    }

    pub(super) fn json_rule() -> impl Strategy<Value = Json> {
        leaf().prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                (
                    prop::sample::select(OPERATORS),
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(op, args)| json!({ op: args })),
                (prop::sample::select(OPERATORS), inner.clone())
                    .prop_map(|(op, arg)| json!({ op: arg })),
                prop::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The compile-time worst case is an upper bound on what an evaluation spends,
        /// so a rule the compiler accepts never runs out of fuel.
        #[test]
        fn the_worst_case_bounds_every_evaluation(rule in json_rule(), data in json_rule()) {
            let schema = BoundedJsonSchema::of(&data);
            if let Ok(compiled) = compile(&rule, &schema, Limits::default()) {
                let (steps, bytes) = compiled.worst_case(&schema);
                let fuel = Fuel::new(u64::MAX / 2, u64::MAX / 2);
                let _ = compiled.eval_with(&JsonData::new(&data), &fuel);
                let (used_steps, used_bytes) = fuel.used();
                prop_assert!(used_steps <= steps, "{rule} on {data}: {used_steps} steps > {steps}");
                prop_assert!(used_bytes <= bytes, "{rule} on {data}: {used_bytes} bytes > {bytes}");
            }
        }

        #[test]
        fn compiling_and_evaluating_never_panics(rule in json_rule(), data in json_rule()) {
            if let Ok(compiled) = compile(&rule, &JsonSchema, Limits::default()) {
                let data = JsonData::new(&data);
                let first = compiled.eval(&data).map(|v| v.to_json());
                // Same input, same output.
                prop_assert_eq!(&first, &compiled.eval(&data).map(|v| v.to_json()));
                // `when` conditions take the short cut to truthiness: the same answer
                // (a rule out of fuel is false).
                let truthy = compiled.eval(&data).is_ok_and(|v| v.truthy());
                prop_assert_eq!(compiled.matches(&data), truthy);
            }
        }
    }
}

#[test]
fn rule_eval_cli_agrees_with_the_library() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = properties::json_rule();
    let mut compared = 0;
    while compared < 25 {
        let rule = strategy.new_tree(&mut runner).expect("a rule").current();
        let data = strategy.new_tree(&mut runner).expect("data").current();
        let Ok(expected) = eval(&rule, &data) else {
            continue;
        };
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_micromoment"))
            .args([
                "rule",
                "eval",
                &rule.to_string(),
                "--data",
                &data.to_string(),
            ])
            .output()
            .expect("the CLI runs");
        assert!(
            output.status.success(),
            "rule eval {rule} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed: Json = serde_json::from_slice(&output.stdout).expect("the CLI prints JSON");
        assert_eq!(printed, expected, "rule {rule} on {data}");
        compared += 1;
    }
}

#[test]
fn rule_eval_cli_examples() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_micromoment"))
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = run(&[
        "rule",
        "eval",
        r#"{"glob":[{"var":"page.path"},"/models/**"]}"#,
        "--data",
        r#"{"page":{"path":"/models/suv/x5"}}"#,
    ]);
    assert_eq!((code, stdout.as_str()), (Some(0), "true\n"));
    let (code, _, stderr) = run(&["rule", "eval", r#"{"glb":[1,2]}"#]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: the rule does not compile: unknown operator \"glb\" (did you mean \"glob\"?)\n"
    );
}

/// Rules whose work grows with their data: refused at compile time over bounded data,
/// and stopped by the fuel at evaluation over data of any size.
#[test]
fn rules_whose_work_explodes_are_refused_or_stopped() {
    let doubling = json!({"reduce": [{"var": "list"},
        {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
    // Each element of `matrix` is a list: the inner `some` visits all of them.
    let nested = json!({"some": [{"var": "matrix"}, {"some": [{"var": ""},
        {"==": [{"var": ""}, -1]}]}]});
    let list: Vec<u32> = (0..40).collect();
    let row: Vec<u32> = (0..120).collect();
    let data = json!({ "list": list, "matrix": vec![row; 120] });
    let schema = BoundedJsonSchema::of(&data);
    let checked = Limits {
        check_cost: true,
        ..Limits::default()
    };
    for rule in [&doubling, &nested] {
        let err = compile(rule, &schema, checked).expect_err("over the budget");
        assert!(
            matches!(err.kind, CompileErrorKind::TooCostly { .. }),
            "{rule}: {err}"
        );
        // Evaluated anyway (`rule eval` does not know the data in advance): the fuel
        // stops it.
        let compiled = compile(rule, &JsonSchema, Limits::default()).expect("compiles");
        assert_eq!(
            compiled.eval(&JsonData::new(&data)).map(|v| v.to_json()),
            Err(micromoment::rules::OutOfFuel),
            "{rule}"
        );
    }
    let err = compile(&doubling, &schema, checked).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule can take up to unboundedly many steps and build up to unboundedly many bytes per evaluation, over the budget of 10000 steps and 262144 bytes"
    );
    // A rule that iterates within the budget is fine: 2 steps, then 40 elements of a
    // 3-node body; each element read is charged as a copy of the largest value the
    // data holds (1,280 bytes of text), an upper bound.
    let fine = json!({"some": [{"var": "list"}, {"==": [{"var": ""}, 39]}]});
    let small = json!({ "list": (0..40).collect::<Vec<u32>>() });
    let schema = BoundedJsonSchema::of(&small);
    let compiled = compile(&fine, &schema, checked).expect("within the budget");
    assert_eq!(compiled.worst_case(&schema), (122, 51_200));
    assert_eq!(
        compiled.eval(&JsonData::new(&small)).map(|v| v.to_json()),
        Ok(json!(true))
    );
}

/// Found by the `rule` fuzzer (fuzz/seeds/rule/nested-arrays): the work estimate of a
/// literal bounded each nested array twice per level, 2^33 calls for 33 levels, so
/// compiling this 66-byte rule never ended. It is linear now, and the estimate still
/// holds.
#[test]
fn deeply_nested_literal_arrays_are_estimated_in_linear_time() {
    let text = format!("{}{}", "[".repeat(33), "]".repeat(33));
    let rule: Json = serde_json::from_str(&text).unwrap();
    let schema = BoundedJsonSchema::of(&Json::Null);
    let checked = Limits {
        check_cost: true,
        ..Limits::default()
    };
    match compile(&rule, &schema, checked) {
        Ok(compiled) => {
            let (steps, bytes) = compiled.worst_case(&schema);
            let fuel = Fuel::new(u64::MAX / 2, u64::MAX / 2);
            let _ = compiled.eval_with(&JsonData::new(&Json::Null), &fuel);
            let (used_steps, used_bytes) = fuel.used();
            assert!(used_steps <= steps && used_bytes <= bytes);
        }
        Err(e) => assert!(
            matches!(e.kind, CompileErrorKind::TooDeep { .. }),
            "a typed error at most: {e}"
        ),
    }
}
