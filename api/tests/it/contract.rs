//! The OpenAPI document and the contract's types held together: every schema the document
//! declares has sample values of its `mist_wire` type here; each sample serializes to JSON
//! that the document's schema accepts (no field the schema does not declare, every required
//! field present, every enum value declared), and deserializes back to the same value. Each
//! property a schema declares must appear in some sample, so the document cannot promise a
//! field the types never send.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use mist_wire::auth::{LoginRequest, LoginResponse, Role, UserInfo, UserList};
use mist_wire::catalog::{
    ArtifactLink, ConditionInfo, ConditionStatus, ConditionType, GameDetail, GameList, GameSummary,
    ImageLink, LaunchInfo, StoreMetadata, VersionDetail, VersionState, VersionSummary,
};
use mist_wire::error::ErrorBody;
use mist_wire::joblog::{JobLog, JobLogLine, LogLevel};
use mist_wire::repair::{
    RepairFile, RepairFileRequest, RepairMethod, RepairRequest, RepairResponse,
};
use mist_wire::status::{
    FriendGameStatus, FriendStatus, FriendVersionStatus, GameStatus, JobKind, JobProgress,
    JobState, MetadataStale, Phase, QueueEntry, StatusError, StatusReport, StatusView,
    VersionStatus,
};
use mist_wire::update::{PlanStep, Rejected, Route, StepKind, UpdatePlan};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks one type's samples against the document; returns the schema's name.
fn check<T>(document: &Value, seen: &mut Seen, samples: &[T]) -> String
where
    T: utoipa::ToSchema + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let name = T::name().into_owned();
    let schema = &document["components"]["schemas"][&name];
    assert!(schema.is_object(), "the document has no schema {name}");
    for sample in samples {
        let json = serde_json::to_value(sample).unwrap();
        if let Err(problem) = validate(document, schema, &json, &name, seen) {
            panic!("{name}: {problem}\nsample: {json:#}");
        }
        let back: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, sample, "{name} does not round-trip");
    }
    name
}

/// Which properties of which schema some sample held.
type Seen = BTreeMap<String, BTreeSet<String>>;

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> (&'a Value, Option<String>) {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap().to_owned();
            (&document["components"]["schemas"][&name], Some(name))
        }
        None => (schema, None),
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// How strictly [`validate`] reads a schema.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Ours: a property the schema does not declare is an error.
    Strict,
    /// JSON Schema's, as a client's validator reads the document: undeclared properties
    /// pass unless the schema says `additionalProperties: false`. `oneOf` counts its
    /// matches this way, so two options that both accept a value are caught.
    Standard,
}

fn validate(
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    seen: &mut Seen,
) -> Result<(), String> {
    validate_as(Mode::Strict, document, schema, value, at, seen)
}

fn validate_as(
    mode: Mode,
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    seen: &mut Seen,
) -> Result<(), String> {
    let (schema, named) = resolve(document, schema);
    let owner = named.unwrap_or_else(|| at.to_owned());
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matching: Vec<usize> = (0..options.len())
                .filter(|&idx| {
                    let mut scratch = Seen::new();
                    validate_as(
                        Mode::Standard,
                        document,
                        &options[idx],
                        value,
                        at,
                        &mut scratch,
                    )
                    .is_ok()
                })
                .collect();
            let Some(&first) = matching.first() else {
                return Err(format!("{at}: matches none of {key}"));
            };
            if key == "oneOf" && matching.len() > 1 {
                return Err(format!("{at}: matches several of oneOf"));
            }
            return validate_as(mode, document, &options[first], value, at, seen);
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            validate_as(mode, document, part, value, at, seen)?;
        }
        return Ok(());
    }
    match schema.get("type") {
        Some(Value::String(name)) if !type_matches(name, value) => {
            return Err(format!("{at}: {value} is not a {name}"));
        }
        Some(Value::Array(names))
            if !names
                .iter()
                .any(|name| type_matches(name.as_str().unwrap_or(""), value)) =>
        {
            return Err(format!("{at}: {value} is none of {names:?}"));
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (idx, item) in array.iter().enumerate() {
            validate_as(mode, document, items, item, &format!("{at}[{idx}]"), seen)?;
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let required = required.as_str().unwrap();
            if !object.contains_key(required) {
                return Err(format!("{at}: required property {required} missing"));
            }
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (key, field) in object {
            let Some(property) = properties.get(key) else {
                if mode == Mode::Strict || closed {
                    return Err(format!("{at}: property {key} is not in the schema"));
                }
                continue;
            };
            seen.entry(owner.clone()).or_default().insert(key.clone());
            validate_as(
                mode,
                document,
                property,
                field,
                &format!("{at}.{key}"),
                seen,
            )?;
        }
    }
    Ok(())
}

fn store_metadata() -> StoreMetadata {
    StoreMetadata {
        steam_app_id: 504_230,
        genres: vec!["Action".to_owned(), "Indie".to_owned()],
        developers: vec!["Maddy Makes Games Inc.".to_owned()],
        release_date: Some("25 Jan, 2018".to_owned()),
        fetched_at: 1_700_000_000_000,
    }
}

fn image_link() -> ImageLink {
    let digest = format!("blake3:{}", "9".repeat(64));
    ImageLink {
        url: mist_wire::digest::image_path("starfall", &digest),
        digest,
        size: 48_213,
        content_type: "image/jpeg".to_owned(),
    }
}

fn link(tag: char) -> ArtifactLink {
    let digest = format!("blake3:{}", tag.to_string().repeat(64));
    ArtifactLink {
        url: mist_wire::digest::artifact_path(&digest),
        digest,
        size: 1234,
    }
}

fn progress(kind: JobKind) -> JobProgress {
    JobProgress {
        kind,
        stage: "diffing".to_owned(),
        stage_index: 1,
        done: 12,
        total: 40,
    }
}

fn status_report() -> StatusReport {
    StatusReport {
        commit: Some("c0ffee".to_owned()),
        last_applied_revision: Some("c0ffee".to_owned()),
        last_attempted_revision: None,
        errors: vec![
            StatusError {
                file: Some("games/x/game.yaml".to_owned()),
                line: Some(3),
                column: Some(1),
                message: "unknown field `titel`".to_owned(),
                hint: Some("did you mean `title`?".to_owned()),
            },
            StatusError {
                file: None,
                line: None,
                column: None,
                message: "cannot read the repository".to_owned(),
                hint: None,
            },
        ],
        games: vec![GameStatus {
            name: "starfall".to_owned(),
            suspended: false,
            metadata_stale: Some(MetadataStale {
                reason: "RateLimited".to_owned(),
                message: "a sentence".to_owned(),
                since: 1_700_000_000_000,
            }),
            versions: [
                Phase::Ready,
                Phase::Reconciling,
                Phase::Stalled,
                Phase::Inactive,
                Phase::Unknown,
            ]
            .into_iter()
            .enumerate()
            .map(|(idx, phase)| VersionStatus {
                name: format!("1.{idx}"),
                ready: phase == Phase::Ready,
                status: phase,
                reason: phase.as_str().to_owned(),
                message: "a sentence".to_owned(),
                progress: (phase == Phase::Reconciling).then(|| progress(JobKind::Delta)),
            })
            .collect(),
        }],
        queue: [
            (JobKind::Ingest, JobState::Queued),
            (JobKind::Pack, JobState::Running),
            (JobKind::Delta, JobState::Failed),
            (JobKind::Prune, JobState::Terminal),
            (JobKind::Delta, JobState::Done),
        ]
        .into_iter()
        .map(|(kind, state)| QueueEntry {
            key: format!("{}:k", kind.as_str()),
            kind,
            game: Some("starfall".to_owned()),
            version: None,
            state,
            attempts: 2,
            last_error: Some("boom".to_owned()),
            next_attempt_at: 1_700_000_000_000,
            progress: progress(kind),
            log_lines: 3,
        })
        .collect(),
    }
}

#[test]
fn the_openapi_document_and_the_wire_types_agree() {
    let document = mist_api::openapi_json();
    let mut seen = Seen::new();
    let mut checked = BTreeSet::new();
    let doc = &document;
    let seen = &mut seen;

    checked.insert(check(
        doc,
        seen,
        &[ErrorBody {
            error: "not found".to_owned(),
        }],
    ));
    checked.insert(check(
        doc,
        seen,
        &[LoginRequest {
            user: "alice".to_owned(),
            password: "pw".to_owned(),
        }],
    ));
    checked.insert(check(
        doc,
        seen,
        &[Role::User, Role::Admin].map(|role| LoginResponse {
            token: "t".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_at: 1_700_000_000,
            user: "alice".to_owned(),
            role,
        }),
    ));
    let users = UserList {
        users: vec![
            UserInfo {
                name: "alice".to_owned(),
                display_name: Some("Alice".to_owned()),
                role: Role::User,
                disabled: false,
            },
            UserInfo {
                name: "root".to_owned(),
                display_name: None,
                role: Role::Admin,
                disabled: true,
            },
        ],
    };
    checked.insert(check(doc, seen, std::slice::from_ref(&users)));

    let states = [
        VersionState::Pending,
        VersionState::Ingested,
        VersionState::Ready,
        VersionState::Stalled,
        VersionState::Retired,
    ];
    let summaries = GameList {
        games: vec![
            GameSummary {
                name: "starfall".to_owned(),
                title: "Starfall".to_owned(),
                description: Some("A game.".to_owned()),
                store: Some(store_metadata()),
                header_image: Some(image_link()),
                private: true,
                latest: Some("1.2".to_owned()),
                versions: states
                    .iter()
                    .map(|state| VersionSummary {
                        name: format!("{state:?}"),
                        notes: Some("notes".to_owned()),
                        tree_digest: Some(link('a').digest),
                        size: Some(1234),
                        state: Some(*state),
                    })
                    .collect(),
                suspended: Some(false),
            },
            GameSummary {
                name: "lantern".to_owned(),
                title: "Lantern".to_owned(),
                description: None,
                store: None,
                header_image: None,
                private: false,
                latest: None,
                versions: vec![VersionSummary {
                    name: "1.0".to_owned(),
                    notes: None,
                    tree_digest: None,
                    size: None,
                    state: None,
                }],
                suspended: None,
            },
        ],
    };
    checked.insert(check(doc, seen, std::slice::from_ref(&summaries)));
    let conditions = [
        (ConditionType::Ready, ConditionStatus::True),
        (ConditionType::Reconciling, ConditionStatus::False),
        (ConditionType::Stalled, ConditionStatus::Unknown),
        (ConditionType::MetadataStale, ConditionStatus::True),
    ]
    .map(|(condition_type, status)| ConditionInfo {
        r#type: condition_type,
        status,
        reason: "Ready".to_owned(),
        message: "served".to_owned(),
        since: 1_700_000_000_000,
    });
    let details = [
        GameDetail {
            name: "starfall".to_owned(),
            title: "Starfall".to_owned(),
            description: Some("A game.".to_owned()),
            store: Some(store_metadata()),
            header_image: Some(image_link()),
            private: false,
            launch: Some(LaunchInfo {
                executable: "bin/starfall".to_owned(),
                args: vec!["--windowed".to_owned()],
            }),
            latest: Some("1.0".to_owned()),
            versions: vec![VersionDetail {
                name: "1.0".to_owned(),
                notes: Some("first".to_owned()),
                tree_digest: Some(link('b').digest),
                manifest: Some(link('c')),
                pack: Some(link('d')),
                released_at: Some(1_700_000_000_000),
                state: Some(VersionState::Ready),
                conditions: Some(conditions.to_vec()),
            }],
            suspended: Some(true),
            conditions: Some(conditions[3..].to_vec()),
        },
        GameDetail {
            name: "lantern".to_owned(),
            title: "Lantern".to_owned(),
            description: None,
            store: None,
            header_image: None,
            private: true,
            launch: None,
            latest: None,
            versions: vec![VersionDetail {
                name: "0.1".to_owned(),
                notes: None,
                tree_digest: None,
                manifest: None,
                pack: None,
                released_at: None,
                state: None,
                conditions: None,
            }],
            suspended: None,
            conditions: None,
        },
    ];
    checked.insert(check(doc, seen, &details));

    let step = |kind: StepKind, from: Option<&str>, to: &str, tag: char| {
        let artifact = link(tag);
        PlanStep {
            kind,
            from: from.map(str::to_owned),
            to: to.to_owned(),
            digest: artifact.digest,
            size: artifact.size,
            url: artifact.url,
        }
    };
    let plans = [
        UpdatePlan {
            game: "starfall".to_owned(),
            from: Some("1.0".to_owned()),
            to: "1.2".to_owned(),
            route: Route::Chain,
            steps: vec![
                step(StepKind::Delta, Some("1.0"), "1.1", 'e'),
                step(StepKind::Delta, Some("1.1"), "1.2", 'f'),
            ],
            total_bytes: 2468,
            manifest: Some(link('0')),
            rejected: vec![
                Rejected {
                    route: Route::Full,
                    total_bytes: Some(99_999),
                    reason: "97531 bytes more".to_owned(),
                },
                Rejected {
                    route: Route::Skip,
                    total_bytes: None,
                    reason: "no warmed skip delta leads there".to_owned(),
                },
            ],
        },
        UpdatePlan {
            game: "starfall".to_owned(),
            from: None,
            to: "1.2".to_owned(),
            route: Route::Full,
            steps: vec![step(StepKind::Pack, None, "1.2", '1')],
            total_bytes: 1234,
            manifest: None,
            rejected: Vec::new(),
        },
        UpdatePlan {
            game: "starfall".to_owned(),
            from: Some("1.2".to_owned()),
            to: "1.2".to_owned(),
            route: Route::UpToDate,
            steps: Vec::new(),
            total_bytes: 0,
            manifest: Some(link('2')),
            rejected: vec![Rejected {
                route: Route::Skip,
                total_bytes: Some(1),
                reason: "r".to_owned(),
            }],
        },
    ];
    checked.insert(check(doc, seen, &plans));
    checked.insert(check(
        doc,
        seen,
        &[Route::UpToDate, Route::Full, Route::Skip, Route::Chain],
    ));
    checked.insert(check(doc, seen, &[StepKind::Pack, StepKind::Delta]));
    checked.insert(check(doc, seen, &plans[0].rejected));

    checked.insert(check(
        doc,
        seen,
        &[RepairRequest {
            files: vec![RepairFileRequest {
                path: "data/a.pak".to_owned(),
                signature: "AAAA".to_owned(),
            }],
        }],
    ));
    checked.insert(check(
        doc,
        seen,
        &[RepairResponse {
            files: [RepairMethod::Rsync, RepairMethod::Whole]
                .map(|method| RepairFile {
                    path: "data/a.pak".to_owned(),
                    method,
                    size: 10,
                    blake3: "ab".repeat(32),
                    delta: "AAAA".to_owned(),
                })
                .to_vec(),
        }],
    ));

    let report = status_report();
    let friend = FriendStatus {
        games: vec![FriendGameStatus {
            name: "starfall".to_owned(),
            versions: vec![FriendVersionStatus {
                name: "1.0".to_owned(),
                ready: true,
            }],
        }],
    };
    checked.insert(check(
        doc,
        seen,
        &[StatusView::Admin(report), StatusView::Friend(friend)],
    ));
    let line = |seq: u64, level: LogLevel, message: &str| JobLogLine {
        seq,
        at: 1_700_000_000_000 + seq as i64,
        level,
        message: message.to_owned(),
    };
    checked.insert(check(
        doc,
        seen,
        &[
            JobLog {
                key: "pack:starfall:blake3:ab".to_owned(),
                state: JobState::Running,
                last_seq: 14,
                n_dropped: 11,
                lines: vec![
                    line(12, LogLevel::Info, "packing 3 files"),
                    line(13, LogLevel::Warn, "slow disk"),
                    line(14, LogLevel::Error, "failed: disk full"),
                ],
            },
            JobLog {
                key: "ingest:starfall:1.0".to_owned(),
                state: JobState::Queued,
                last_seq: 0,
                n_dropped: 0,
                lines: Vec::new(),
            },
        ],
    ));

    // Every schema of the document was checked, directly or inside another.
    let declared: BTreeSet<String> = document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut reached: BTreeSet<String> = seen.keys().cloned().collect();
    reached.extend(checked);
    let unchecked: Vec<&String> = declared.difference(&reached).collect();
    // Enums are checked through the samples of the types that hold them; a raw download
    // (`format: binary`) is not JSON.
    let structured: Vec<&&String> = unchecked
        .iter()
        .filter(|name| {
            let schema = &document["components"]["schemas"][name.as_str()];
            schema.get("enum").is_none() && schema.get("format") != Some(&Value::from("binary"))
        })
        .collect();
    assert!(
        structured.is_empty(),
        "schemas without samples: {structured:?}"
    );

    // Every property a schema declares was sent by some sample.
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for property in properties.keys() {
            assert!(
                seen.get(name).is_some_and(|keys| keys.contains(property)),
                "{name}.{property} is declared but no sample sends it"
            );
        }
    }
}
