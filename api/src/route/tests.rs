//! The planner's rules, one table row per case. Versions are written `name:pack size`
//! (`name:-` without a pack, a trailing `!` when not servable); deltas `from>to:size`.

use super::*;

fn input(versions: &str, deltas: &str) -> PlanInput {
    let versions = versions
        .split_whitespace()
        .map(|word| {
            let (word, servable) = match word.strip_suffix('!') {
                Some(word) => (word, false),
                None => (word, true),
            };
            let (name, pack) = word.split_once(':').expect("name:size");
            PlanVersion {
                name: name.to_owned(),
                pack: (pack != "-").then(|| Blob {
                    digest: format!("pack-{name}"),
                    size: pack.parse().expect("pack size"),
                }),
                servable,
            }
        })
        .collect();
    let deltas = deltas
        .split_whitespace()
        .map(|word| {
            let (edge, size) = word.split_once(':').expect("from>to:size");
            let (from, to) = edge.split_once('>').expect("from>to");
            PlanDelta {
                from: from.to_owned(),
                to: to.to_owned(),
                blob: Blob {
                    digest: format!("delta-{from}-{to}"),
                    size: size.parse().expect("delta size"),
                },
            }
        })
        .collect();
    PlanInput { versions, deltas }
}

/// `route: step step … = total | rejected route cost (reason) …`
fn render(result: &Result<Plan, PlanError>) -> String {
    let plan = match result {
        Ok(plan) => plan,
        Err(error) => return format!("error: {error}"),
    };
    let steps: Vec<String> = plan
        .steps
        .iter()
        .map(|step| match (&step.kind, &step.from) {
            (StepKind::Pack, _) => format!("pack {} {}", step.to, step.size),
            (StepKind::Delta, Some(from)) => format!("{from}>{} {}", step.to, step.size),
            (StepKind::Delta, None) => panic!("a delta without from"),
        })
        .collect();
    let mut text = format!(
        "{}: {} = {}",
        route_name(plan.route),
        steps.join(", "),
        plan.total_bytes
    );
    for rejected in &plan.rejected {
        let cost = rejected
            .total_bytes
            .map_or_else(|| "-".to_owned(), |bytes| bytes.to_string());
        text.push_str(&format!(
            " | {} {cost} ({})",
            route_name(rejected.route),
            rejected.reason
        ));
    }
    text
}

fn check(versions: &str, deltas: &str, from: Option<&str>, to: &str, expected: &str) {
    let input = input(versions, deltas);
    let result = plan(&input, from, to);
    assert_eq!(
        render(&result),
        expected,
        "\nversions {versions}\ndeltas {deltas}\n{from:?} -> {to}"
    );
    if let Ok(plan) = &result {
        // Every plan is a walk that starts where the client is and ends at the target.
        let mut at = plan.from.clone();
        for step in &plan.steps {
            if step.kind == StepKind::Delta {
                assert_eq!(step.from, at, "steps are contiguous");
            }
            at = Some(step.to.clone());
        }
        assert_eq!(
            at.as_deref(),
            Some(plan.to.as_str())
                .filter(|_| !plan.steps.is_empty())
                .or(plan.from.as_deref())
        );
        assert_eq!(
            plan.total_bytes,
            plan.steps.iter().map(|s| s.size).sum::<u64>()
        );
    }
}

const FOUR: &str = "1:100 2:100 3:100 4:100";

#[test]
fn fresh_install_is_the_pack() {
    check(FOUR, "1>2:10", None, "4", "full download: pack 4 100 = 100");
}

#[test]
fn fresh_install_without_a_pack_has_no_route() {
    check(
        "1:100 2:-",
        "1>2:10",
        None,
        "2",
        "error: no way to reach version '2': full download: version 2 has no pack",
    );
}

#[test]
fn same_version_is_up_to_date() {
    check(FOUR, "", Some("3"), "3", "up to date:  = 0");
}

#[test]
fn next_version_takes_the_direct_delta() {
    check(
        FOUR,
        "1>2:10 2>3:10 3>4:10",
        Some("3"),
        "4",
        "delta chain: 3>4 10 = 10 | full download 100 (90 bytes more) \
         | skip delta - (no warmed skip delta leads there)",
    );
}

#[test]
fn chain_when_cheaper_than_the_pack() {
    check(
        FOUR,
        "1>2:10 2>3:20 3>4:30",
        Some("1"),
        "4",
        "delta chain: 1>2 10, 2>3 20, 3>4 30 = 60 | full download 100 (40 bytes more) \
         | skip delta - (no warmed skip delta leads there)",
    );
}

#[test]
fn pack_when_the_chain_costs_more() {
    check(
        FOUR,
        "1>2:40 2>3:40 3>4:40",
        Some("1"),
        "4",
        "full download: pack 4 100 = 100 | delta chain 120 (20 bytes more) \
         | skip delta - (no warmed skip delta leads there)",
    );
}

#[test]
fn warmed_skip_delta_wins_over_chain_and_pack() {
    check(
        FOUR,
        "1>2:30 2>3:30 3>4:30 1>4:35 2>4:32",
        Some("1"),
        "4",
        "skip delta: 1>4 35 = 35 | full download 100 (65 bytes more) \
         | delta chain 90 (55 bytes more)",
    );
}

#[test]
fn skip_combined_with_a_direct_delta_first() {
    // Version 1 has no skip delta of its own, but 2 does.
    check(
        FOUR,
        "1>2:5 2>3:30 3>4:30 2>4:20",
        Some("1"),
        "4",
        "skip delta: 1>2 5, 2>4 20 = 25 | full download 100 (75 bytes more) \
         | delta chain 65 (40 bytes more)",
    );
}

#[test]
fn expensive_skip_loses_to_the_chain() {
    check(
        FOUR,
        "1>2:10 2>3:10 3>4:10 1>4:50",
        Some("1"),
        "4",
        "delta chain: 1>2 10, 2>3 10, 3>4 10 = 30 | full download 100 (70 bytes more) \
         | skip delta 50 (20 bytes more)",
    );
}

#[test]
fn missing_direct_delta_breaks_the_chain_only() {
    check(
        FOUR,
        "1>2:10 3>4:10 1>3:15",
        Some("1"),
        "4",
        "skip delta: 1>3 15, 3>4 10 = 25 | full download 100 (75 bytes more) \
         | delta chain - (no delta from 2 to 3)",
    );
}

#[test]
fn unservable_intermediate_version_is_not_passed_through() {
    // Version 3 is stalled: a friend cannot go through it, but can skip over it.
    check(
        "1:100 2:100 3:100! 4:100",
        "1>2:10 2>3:10 3>4:10 2>4:25",
        Some("1"),
        "4",
        "skip delta: 1>2 10, 2>4 25 = 35 | full download 100 (65 bytes more) \
         | delta chain - (version 3 is not available)",
    );
}

#[test]
fn update_may_start_from_an_unservable_version() {
    // What the client has may have been retired since; its deltas still count.
    check(
        "1:100! 2:100",
        "1>2:10",
        Some("1"),
        "2",
        "delta chain: 1>2 10 = 10 | full download 100 (90 bytes more) \
         | skip delta - (no warmed skip delta leads there)",
    );
}

#[test]
fn target_must_be_servable_and_known() {
    check(
        "1:100 2:100!",
        "1>2:10",
        Some("1"),
        "2",
        "error: version '2' is not available",
    );
    check(
        "1:100",
        "",
        Some("1"),
        "9",
        "error: version '9' is not available",
    );
    check(
        "1:100",
        "",
        Some("0"),
        "1",
        "error: version '0' is not known",
    );
}

#[test]
fn downgrade_is_a_full_download() {
    check(
        FOUR,
        "1>2:10 2>3:10 3>4:10",
        Some("4"),
        "2",
        "full download: pack 2 100 = 100 \
         | delta chain - (deltas only go forward; this is a downgrade) \
         | skip delta - (deltas only go forward; this is a downgrade)",
    );
}

#[test]
fn equal_cost_prefers_fewer_steps_then_the_pack() {
    check(
        "1:20 2:20 3:20",
        "1>2:10 2>3:10",
        Some("1"),
        "3",
        "full download: pack 3 20 = 20 | delta chain 20 (as many bytes, in more steps) \
         | skip delta - (no warmed skip delta leads there)",
    );
}

#[test]
fn no_pack_and_no_delta_is_an_error_naming_every_route() {
    check(
        "1:100 2:- 3:-",
        "1>2:10",
        Some("1"),
        "3",
        "error: no way to reach version '3': full download: version 3 has no pack; \
         delta chain: no delta from 2 to 3; skip delta: no warmed skip delta leads there",
    );
}

#[test]
fn deltas_naming_unknown_versions_are_ignored() {
    check(
        "1:100 2:100",
        "0>2:1 1>9:1 1>2:10",
        Some("1"),
        "2",
        "delta chain: 1>2 10 = 10 | full download 100 (90 bytes more) \
         | skip delta - (no warmed skip delta leads there)",
    );
}
