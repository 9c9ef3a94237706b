//! Scenario files parsed, expanded and refused.

use super::*;

const GOOD: &str = r#"suite = "stream"
table = "encoder"
pacing = "max"
warmup_frames = 5
frames = 30
repetitions = 2

[base]
encoder.gop = 30

[[sweep]]
path = "encoder.preset"
values = ["ultrafast", "veryfast", "medium"]

[[sweep]]
path = "encoder.pipeline.threads"
values = [1, 2]

[quick]
frames = 10
repetitions = 1
[[quick.sweep]]
path = "encoder.preset"
values = ["ultrafast"]
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("scenarios/test.toml"), text)
}

#[test]
fn parses_and_expands() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.suite, "stream");
    assert_eq!(s.base.encoder.gop, 30);
    let full = s.plan(false);
    assert_eq!(full.points.len(), 6);
    assert_eq!(full.settings.repetitions, 2);
    let quick = s.plan(true);
    assert_eq!(quick.points.len(), 2);
    assert_eq!(quick.settings.length, Length::Frames(10));
    assert_eq!(quick.settings.warmup_frames, 5);
}

#[test]
fn excluded_combinations_are_not_planned() {
    let rule = "[[exclude]]\n\"encoder.preset\" = \"medium\"\n\"encoder.pipeline.threads\" = 1\n";
    let text = GOOD.replace("\n[quick]", &format!("\n{rule}\n[quick]"));
    let full = parse(&text).unwrap().plan(false);
    assert_eq!(full.points.len(), 5, "6 points less medium with 1 thread");
    assert!(
        !full
            .points
            .iter()
            .any(|p| p.id() == "encoder.preset=medium, encoder.pipeline.threads=1")
    );
    let not_an_axis = text.replace("\"encoder.preset\" = \"medium\"", "\"encoder.gop\" = 30");
    let e = parse(&not_an_axis).unwrap_err();
    assert!(e.to_string().contains("not an axis"), "{e}");
    let not_a_value = text.replace(
        "= \"medium\"\n\"encoder.pipeline",
        "= \"slow\"\n\"encoder.pipeline",
    );
    let e = parse(&not_a_value).unwrap_err();
    assert!(
        e.to_string().contains("not one of the axis's values"),
        "{e}"
    );
}

fn expect_err(text: &str, line: usize, field: &str, words: &str) {
    let e = parse(text).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("scenarios/test.toml:{line}: {field}")),
        "{shown}"
    );
    assert!(shown.contains(words), "{shown}");
}

#[test]
fn errors_name_file_line_and_field() {
    expect_err(
        &GOOD.replace("values = [1, 2]", "values = [1, 0]"),
        17,
        "encoder.pipeline.threads",
        "1..=64",
    );
    expect_err(
        &GOOD.replace("\"veryfast\", \"medium\"", "\"veryfast\", \"slowest\""),
        13,
        "encoder.preset",
        "slowest",
    );
    expect_err(
        &GOOD.replace("encoder.gop = 30", "encoder.gop = 0"),
        9,
        "base.encoder.gop",
        "1..=1000",
    );
    expect_err(
        &GOOD.replace("encoder.gop = 30", "encoder.gopp = 30"),
        9,
        "encoder.gopp",
        "unknown field",
    );
    expect_err(
        &GOOD.replace("frames = 30", "frames = \"30\""),
        5,
        "frames",
        "invalid type",
    );
    expect_err(
        &GOOD.replace("repetitions = 2", "repetitions = 0"),
        6,
        "repetitions",
        "1..=100",
    );
    expect_err(
        &GOOD.replace("pacing = \"max\"", "pacing = \"slow\""),
        3,
        "pacing",
        "slow",
    );
    expect_err(
        &GOOD.replace(
            "path = \"encoder.pipeline.threads\"",
            "path = \"encoder.threads\"",
        ),
        17,
        "encoder.threads",
        "unknown field",
    );
    expect_err(
        &GOOD.replace(
            "path = \"encoder.preset\"\nvalues = [\"ultrafast\"]",
            "path = \"encoder.gop\"\nvalues = [30]",
        ),
        23,
        "quick.sweep.path",
        "not an axis",
    );
}

#[test]
fn a_cpu_schedule_is_checked() {
    let cpu = |schedule: &str| parse(&format!("{GOOD}\n[cpu]\nschedule = {schedule}\n"));
    let ok = cpu("[[0, 2.0], [5, 0.6], [20, 2.0]]").unwrap();
    assert_eq!(ok.cpu.unwrap().schedule[1], (5.0, 0.6));
    let e = cpu("[[0, 2.0], [5, 0.0]]").unwrap_err();
    assert_eq!(e.field, "cpu.schedule");
    assert!(e.message.contains("0 cores (expected 0.01..=1024)"), "{e}");
    assert!(cpu("[[1, 2.0]]").is_err());
}

#[test]
fn a_link_schedule_is_checked_and_needs_players() {
    // `players` at the top level, before the tables.
    let top =
        |link: &str, players: u32| parse(&format!("players = {players}\n{GOOD}\n[link]\n{link}\n"));
    let ok = top("schedule = [[0, 8000], [5, 1500], [20, 8000]]", 1).unwrap();
    assert_eq!(ok.link.unwrap().schedule[1], (5.0, 1500));
    let e = top("schedule = [[1, 8000]]", 1).unwrap_err();
    assert_eq!(e.field, "link.schedule");
    assert!(e.message.contains("start with a step at 0 s"), "{e}");
    let e = top("schedule = [[0, 8000], [5, 1500], [5, 900]]", 1).unwrap_err();
    assert!(e.message.contains("must increase"), "{e}");
    let e = top("schedule = [[0, 8]]", 1).unwrap_err();
    assert!(
        e.message.contains("8 kbit/s (expected 16..=10000000)"),
        "{e}"
    );
    let e = top("schedule = [[0, 8000]]", 0).unwrap_err();
    assert_eq!(e.field, "link");
}

#[test]
fn quick_schedules_replace_the_full_runs_and_are_checked() {
    let link = "[link]\nschedule = [[0, 8000], [5, 1500], [20, 8000]]\n";
    let quick = "[quick.link]\nschedule = [[0, 8000], [2, 1500], [7, 8000]]\n";
    let s = parse(&format!("players = 1\n{GOOD}{quick}{link}")).unwrap();
    assert_eq!(s.plan(false).link.unwrap().schedule[1], (5.0, 1500));
    assert_eq!(s.plan(true).link.unwrap().schedule[1], (2.0, 1500));
    assert!(s.plan(true).cpu.is_none());
    // Without [quick.link], --quick keeps the full run's schedule.
    let s = parse(&format!("players = 1\n{GOOD}{link}")).unwrap();
    assert_eq!(s.plan(true).link.unwrap().schedule[1], (5.0, 1500));
    let e = parse(&format!("players = 1\n{GOOD}{quick}")).unwrap_err();
    assert_eq!(e.field, "quick.link");
    let bad = "[quick.cpu]\nschedule = [[0, 2.0], [2, 0.0]]\n";
    let cpu = "[cpu]\nschedule = [[0, 2.0]]\n";
    let e = parse(&format!("{GOOD}{bad}{cpu}")).unwrap_err();
    assert_eq!(e.field, "quick.cpu.schedule", "{e}");
}
