use super::*;

fn announcement(id: &str, at: i64, tasks: &[(&str, i64, bool)]) -> InstanceAnnouncement {
    InstanceAnnouncement {
        instance_id: id.into(),
        http_url: format!("http://{id}:9464"),
        announced_at: at,
        ttl_ms: 15_000,
        tasks: tasks
            .iter()
            .map(|(t, since, opening)| TaskClaim {
                task: (*t).into(),
                since: *since,
                opening: *opening,
            })
            .collect(),
    }
}

#[test]
fn the_latest_live_claim_owns_a_task() {
    let d = Directory::default();
    d.apply(
        "a",
        Some(announcement(
            "a",
            10_000,
            &[("inventory-0", 1_000, false), ("inventory-1", 1_000, false)],
        )),
        30_000,
    )
    .unwrap();
    assert_eq!(
        d.owner("inventory-0", 10_000, |_| true)
            .map(|o| o.instance_id),
        Some("a".into())
    );
    // b took inventory-0 later (a died without saying so): b's claim wins while both live.
    d.apply(
        "b",
        Some(announcement("b", 12_000, &[("inventory-0", 11_000, true)])),
        30_000,
    )
    .unwrap();
    let owner = d.owner("inventory-0", 12_000, |_| true).unwrap();
    assert_eq!((owner.instance_id.as_str(), owner.opening), ("b", true));
    assert_eq!(owner.http_url, "http://b:9464");
    assert_eq!(
        d.owner("inventory-1", 12_000, |_| true)
            .map(|o| o.instance_id),
        Some("a".into())
    );
    // a's TTL passes: it owns nothing any more.
    assert_eq!(d.owner("inventory-1", 25_001, |_| true), None);
    assert_eq!(
        d.live(25_001).into_keys().collect::<Vec<_>>(),
        vec!["b".to_string()]
    );
    assert_eq!(d.owner("inventory-9", 12_000, |_| true), None);
}

#[test]
fn log_order_decides_tombstones_remove_and_dead_instances_are_pruned() {
    let d = Directory::default();
    d.apply(
        "a",
        Some(announcement("a", 20_000, &[("inventory-0", 1_000, false)])),
        30_000,
    )
    .unwrap();
    // The writer's clock stepped back: its later record still replaces the earlier one.
    d.apply("a", Some(announcement("a", 19_000, &[])), 30_000)
        .unwrap();
    assert_eq!(d.owner("inventory-0", 20_000, |_| true), None);
    d.apply(
        "a",
        Some(announcement("a", 19_500, &[("inventory-0", 1_000, false)])),
        30_000,
    )
    .unwrap();
    assert!(d.owner("inventory-0", 20_000, |_| true).is_some());
    d.apply("a", None, 30_000).unwrap();
    assert_eq!(d.owner("inventory-0", 20_000, |_| true), None);
    assert!(d.live(20_000).is_empty());
    // A killed instance (no tombstone) is dead after its TTL and forgotten later.
    d.apply(
        "k",
        Some(announcement("k", 20_000, &[("inventory-1", 1_000, false)])),
        30_000,
    )
    .unwrap();
    d.prune(20_000 + 15_000 * 20);
    assert_eq!(d.snapshot(0).len(), 1, "pruned too early");
    d.prune(20_000 + 15_000 * 20 + 1);
    assert!(d.snapshot(0).is_empty());
}

/// Review of issue 15: a hostile record on the topic made instances forward queries to any
/// URL, and a claim with `ttl_ms = i64::MAX` or a future `since` held a task for ever.
#[test]
fn invalid_announcements_change_nothing_and_cannot_hold_a_task() {
    let d = Directory::default();
    let now = 1_800_000_000_000;
    d.apply(
        "a",
        Some(announcement("a", now, &[("inventory-0", now - 5, false)])),
        now,
    )
    .unwrap();
    let hostile = |key: &str, spoil: &dyn Fn(&mut InstanceAnnouncement)| {
        let mut a = announcement("evil", now, &[("inventory-0", now, false)]);
        spoil(&mut a);
        d.apply(key, Some(a), now).map_err(|r| r.reason)
    };
    let i = |a: &mut InstanceAnnouncement| a.http_url = "http://127.0.0.1:1/?".into();
    assert_eq!(hostile("evil", &i), Err("url"));
    let i = |a: &mut InstanceAnnouncement| a.http_url = "http://127.0.0.1:1#x".into();
    assert_eq!(hostile("evil", &i), Err("url"));
    assert_eq!(hostile("evil", &|a| a.ttl_ms = i64::MAX), Err("ttl"));
    assert_eq!(
        hostile("evil", &|a| a.tasks[0].since = i64::MAX),
        Err("time")
    );
    assert_eq!(
        hostile("a", &|_| ()),
        Err("key"),
        "evil writing under a's key"
    );
    // a's announcement stands, and is still the owner long after any rejected claim.
    assert_eq!(
        d.owner("inventory-0", now, |_| true).map(|o| o.instance_id),
        Some("a".into())
    );
    assert!(!d.live(now).contains_key("evil"));
    // A valid claim lives at most MAX_TTL_MS.
    assert_eq!(
        hostile("evil", &|a| a.ttl_ms = validate::MAX_TTL_MS),
        Ok(())
    );
    assert!(d
        .owner("inventory-0", now + validate::MAX_TTL_MS + 1, |_| true)
        .is_none());
    // A later claim the caller would not forward to does not hide the owner it would.
    let owner = d.owner("inventory-0", now, |u| u.host == "a").unwrap();
    assert_eq!(owner.instance_id, "a");
    assert_eq!(
        d.owner("inventory-0", now, |_| true).map(|o| o.instance_id),
        Some("evil".into())
    );
    // The URL is kept canonical.
    d.apply(
        "c",
        Some(InstanceAnnouncement {
            http_url: "http://C.example:9/".into(),
            ..announcement("c", now, &[])
        }),
        now,
    )
    .unwrap();
    assert_eq!(d.live(now)["c"], "http://c.example:9");
}

#[test]
fn a_claim_keeps_its_first_time_until_the_task_is_let_go() {
    let mut a = Announcer {
        me: Identity {
            instance_id: "a".into(),
            http_url: "http://a:1".into(),
        },
        ttl_ms: 15_000,
        since: BTreeMap::new(),
    };
    let first = a.announcement(&[("inventory-0".into(), true)], 100);
    assert_eq!((first.tasks[0].since, first.tasks[0].opening), (100, true));
    let again = a.announcement(
        &[("inventory-0".into(), false), ("dedupe-1".into(), false)],
        200,
    );
    assert_eq!(
        again
            .tasks
            .iter()
            .map(|c| (c.task.as_str(), c.since))
            .collect::<Vec<_>>(),
        vec![("inventory-0", 100), ("dedupe-1", 200)]
    );
    assert_eq!(again.announced_at, 200);
    a.announcement(&[], 300);
    let back = a.announcement(&[("inventory-0".into(), false)], 400);
    assert_eq!(
        back.tasks[0].since, 400,
        "a task taken again is a new claim"
    );
}

#[test]
fn identity_defaults_to_host_and_port_and_checks_the_url() {
    let bound: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    let me = Identity::resolve(None, None, bound).unwrap();
    assert!(me.instance_id.ends_with(":9464"), "{me:?}");
    assert_eq!(me.http_url, "http://127.0.0.1:9464");
    let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
    let me = Identity::resolve(Some("shelfsync-1".into()), None, any).unwrap();
    assert_eq!(me.instance_id, "shelfsync-1");
    assert!(
        me.http_url.starts_with("http://")
            && me.http_url.ends_with(":9464")
            && !me.http_url.contains("0.0.0.0"),
        "{me:?}"
    );
    let me =
        Identity::resolve(None, Some("http://shelfsync-1.shelfsync:9464/".into()), any).unwrap();
    assert_eq!(me.http_url, "http://shelfsync-1.shelfsync:9464");
    for bad in [
        "shelfsync-1:9464",
        "http://",
        "ftp://x",
        "http://x:1/?a",
        "http://x:1/path",
        "http://u@x:1",
    ] {
        let err = Identity::resolve(None, Some(bad.into()), bound)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--advertised-url"), "{bad}: {err}");
    }
    assert!(Identity::resolve(Some(" ".into()), None, bound).is_err());
}
