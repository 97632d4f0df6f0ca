//! GrowthBook's cross-SDK bucketing cases, read in place, through our bucketing code.

use micromoment::bucket::{bucket_ranges, choose_variation, equal_weights, hash};
use serde_json::Value as Json;

fn cases(section: &str) -> Vec<Json> {
    let spec = crate::read_json("tests/conformance/growthbook/cases.json");
    spec[section]
        .as_array()
        .unwrap_or_else(|| panic!("section {section}"))
        .clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn hash_cases() {
    let cases = cases("hash");
    assert_eq!(cases.len(), 15);
    for case in cases {
        let (seed, value, version) = (
            case[0].as_str().unwrap(),
            case[1].as_str().unwrap(),
            case[2].as_u64().unwrap(),
        );
        let got = hash(seed, value, version as u32);
        match case[3].as_f64() {
            Some(expected) => assert!(
                got.is_some_and(|g| close(g, expected)),
                "{case}: got {got:?}"
            ),
            None => assert_eq!(got, None, "{case}"),
        }
    }
}

#[test]
fn bucket_range_cases() {
    let cases = cases("getBucketRange");
    assert_eq!(cases.len(), 13);
    for case in cases {
        let args = &case[1];
        let n = args[0].as_u64().unwrap() as usize;
        let coverage = args[1].as_f64().unwrap();
        let weights: Option<Vec<f64>> = args[2]
            .as_array()
            .map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
        let got = bucket_ranges(n, coverage, weights.as_deref());
        let expected: Vec<(f64, f64)> = case[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{}", case[0]);
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                close(g.0, e.0) && close(g.1, e.1),
                "{}: got {got:?}, expected {expected:?}",
                case[0]
            );
        }
    }
}

#[test]
fn choose_variation_cases() {
    let cases = cases("chooseVariation");
    assert_eq!(cases.len(), 13);
    for case in cases {
        let n = case[1].as_f64().unwrap();
        let ranges: Vec<(f64, f64)> = case[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        let expected = case[3].as_i64().unwrap();
        let got = choose_variation(n, &ranges).map_or(-1, |i| i as i64);
        assert_eq!(got, expected, "{}", case[0]);
    }
}

#[test]
fn equal_weights_cases() {
    let cases = cases("getEqualWeights");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let got = equal_weights(case[0].as_i64().unwrap());
        let expected: Vec<f64> = case[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), expected.len(), "{case}");
        // The spec truncates to 8 decimals, as GrowthBook's own test does.
        for (g, e) in got.iter().zip(&expected) {
            assert!(close((g * 1e8).floor() / 1e8, *e), "{case}: got {got:?}");
        }
    }
}
