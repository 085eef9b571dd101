//! Label selectors: the map form KAITO copies onto nodes, and full matching.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The selector as one label map: `matchLabels` plus every `In` expression with exactly one
/// value. `None` when some expression cannot be written as a label (other operators, or `In`
/// with several values).
pub fn as_map(selector: &LabelSelector) -> Option<BTreeMap<String, String>> {
    let mut map = selector.match_labels.clone().unwrap_or_default();
    for expr in selector.match_expressions.iter().flatten() {
        match (expr.operator.as_str(), expr.values.as_deref()) {
            ("In", Some([value])) => {
                map.insert(expr.key.clone(), value.clone());
            }
            _ => return None,
        }
    }
    Some(map)
}

/// Whether a set of labels satisfies the whole selector (labels and every expression).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector.match_expressions.iter().flatten().all(|expr| {
            let values = expr.values.as_deref().unwrap_or_default();
            let value = labels.get(&expr.key);
            match expr.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn single_value_in_expressions_join_the_label_map() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("apps", "phi")])),
            match_expressions: Some(vec![expr("tier", "In", &["gpu"])]),
        };
        assert_eq!(
            as_map(&sel),
            Some(labels(&[("apps", "phi"), ("tier", "gpu")]))
        );
    }

    #[test]
    fn other_expressions_have_no_map_form() {
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("tier", "In", &["a", "b"])]),
            ..Default::default()
        };
        assert_eq!(as_map(&sel), None);
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("tier", "Exists", &[])]),
            ..Default::default()
        };
        assert_eq!(as_map(&sel), None);
    }

    #[test]
    fn matching_honours_labels_and_every_operator() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("apps", "phi")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["gpu", "big"]),
                expr("zone", "NotIn", &["z9"]),
                expr("team", "Exists", &[]),
                expr("old", "DoesNotExist", &[]),
            ]),
        };
        let good = labels(&[("apps", "phi"), ("tier", "big"), ("team", "ml")]);
        assert!(matches(&sel, &good));
        let mut bad = good.clone();
        bad.insert("old".into(), "x".into());
        assert!(!matches(&sel, &bad));
        let mut bad = good.clone();
        bad.insert("zone".into(), "z9".into());
        assert!(!matches(&sel, &bad));
        assert!(!matches(&sel, &labels(&[("apps", "phi"), ("tier", "gpu")])));
        assert!(!matches(
            &sel,
            &labels(&[("apps", "falcon"), ("tier", "gpu"), ("team", "a")])
        ));
    }
}
