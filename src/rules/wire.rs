//! How compiled rules decode from a bundle's payload: the recursive types (`Node`,
//! `Lit`) decode by hand, with the variant numbers and field order their derived
//! `Encode` writes, each level charged to the decode budget and bounded in depth
//! (`crate::codec`). A test round-trips every variant.

use crate::codec::decode_recursive;

use super::{Lit, Node, Rule};

decode_recursive!(Node<V>, |r| {
    Ok(match r.variant()? {
        0 => Node::Lit(r.value()?),
        1 => Node::Array(r.list()?),
        2 => Node::Var(r.value()?, r.optional_box()?),
        3 => Node::Local(r.list()?, r.optional_box()?),
        4 => Node::DynVar(r.boxed()?, r.optional_box()?, r.value()?),
        5 => Node::Op(r.value()?, r.list()?),
        6 => Node::Glob(r.boxed()?, r.value()?),
        7 => Node::SemVer(r.boxed()?, r.value()?, r.value()?),
        8 => Node::InSegment(r.value()?, r.boxed()?),
        9 => Node::Feed(r.value()?, r.list()?),
        found => return Err(r.unexpected("Node", 9, found)),
    })
});

decode_recursive!(Rule<V>, |r| { Ok(Rule { root: r.value()? }) });

decode_recursive!(Lit, |r| {
    Ok(match r.variant()? {
        0 => Lit::Null,
        1 => Lit::Bool(r.value()?),
        2 => Lit::Number(r.value()?),
        3 => Lit::String(r.value()?),
        4 => Lit::Array(r.list()?),
        5 => Lit::Object(r.list()?),
        found => return Err(r.unexpected("Lit", 5, found)),
    })
});

#[cfg(test)]
mod tests {
    use crate::codec::{decode_bounded, encode, CodecError, MAX_DECODE_DEPTH};
    use crate::rules::{compile, JsonSchema, Limits, Lit, Node, Rule};

    fn round_trip(rule: serde_json::Value) {
        let compiled = compile(&rule, &JsonSchema, Limits::default()).unwrap();
        let bytes = encode(&compiled).unwrap();
        let (decoded, claimed): (Rule<Vec<String>>, usize) =
            decode_bounded(&bytes, 1 << 20).unwrap();
        assert_eq!(decoded, compiled, "{rule}");
        assert!(claimed > 0);
    }

    /// The hand-written decoders read what the derived encoders write, for every
    /// variant of every recursive type.
    #[test]
    fn every_variant_round_trips() {
        round_trip(serde_json::json!({"and": [
            {"==": [{"var": "a.b"}, [1, "x", null, true, 2.5, {"k": [1], "l": {"j": null, "m": 2}}]]},
            {"!": [{"var": ["c", {"cat": ["d", 1]}]}]},
            {"map": [{"var": "list"}, {"var": "x.y"}]},
            {"var": [{"cat": ["e", "f"]}, 3]},
            {"glob": [{"var": "page.path"}, "/models/**/x-*"]},
            {"sem_ver": [{"var": "app.version"}, "^", "1.2.3-beta.4"]},
            {"in_segment": "vip"},
            [{"var": "a"}, 2],
            {"reduce": [{"var": "list"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}
        ]}));
    }

    #[test]
    fn nesting_past_the_depth_bound_is_refused_without_recursing() {
        let mut node: Node<Vec<String>> = Node::Lit(Lit::Null);
        for _ in 0..(MAX_DECODE_DEPTH + 10) {
            node = Node::Op(crate::rules::Op::Not, vec![node]);
        }
        let bytes = encode(&Rule { root: node }).unwrap();
        let err = decode_bounded::<Rule<Vec<String>>>(&bytes, 1 << 30).unwrap_err();
        assert_eq!(
            err,
            CodecError::Invalid("Other(\"values nested too deep\")".into())
        );
    }

    #[test]
    fn many_small_nodes_are_charged_before_they_are_allocated() {
        // Two bytes on the wire each, a whole `Node` in memory each.
        let root: Node<Vec<String>> = Node::Array(vec![Node::Lit(Lit::Null); 100_000]);
        let bytes = encode(&Rule { root }).unwrap();
        assert!(bytes.len() < 250_000);
        let err = decode_bounded::<Rule<Vec<String>>>(&bytes, 1_000_000).unwrap_err();
        assert_eq!(
            err,
            CodecError::Invalid("Other(\"decoded size over budget (max_decoded_bytes)\")".into())
        );
    }
}
