//! The broker harness itself: an Apache Kafka broker starts, answers, survives a restart on the same port
//! with the same data, and leaves no process behind.

use std::net::TcpStream;
use std::time::Duration;

use anyhow::{ensure, Result};
use shelfsync_tests::Broker;

fn port_answers(broker: &Broker) -> bool {
    let addr = broker
        .bootstrap()
        .parse()
        .expect("bootstrap is a socket address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

#[test]
fn broker_answers_and_survives_a_restart() -> Result<()> {
    let mut broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{bootstrap}");
    ensure!(
        port_answers(&broker),
        "port closed after start:\n{}",
        broker.log()
    );
    broker.ping()?;
    let meta = broker.dir().join("data/meta.properties");
    let formatted = std::fs::read_to_string(&meta)?;
    ensure!(
        formatted.contains("cluster.id="),
        "{}: {formatted}",
        meta.display()
    );

    broker.restart()?;
    assert_eq!(broker.bootstrap(), bootstrap, "restart must keep the port");
    ensure!(
        port_answers(&broker),
        "port closed after restart:\n{}",
        broker.log()
    );
    broker.ping()?;
    assert_eq!(
        std::fs::read_to_string(&meta)?,
        formatted,
        "a restart must keep the formatted storage"
    );

    broker.kill()?;
    assert!(!broker.is_running());
    assert!(!port_answers(&broker), "port still open after kill");
    broker.restart()?;
    broker.ping()?;
    Ok(())
}

#[test]
fn brokers_run_side_by_side() -> Result<()> {
    let a = Broker::start()?;
    let b = Broker::start()?;
    assert_ne!(a.port(), b.port());
    a.ping()?;
    b.ping()?;
    Ok(())
}

#[test]
fn drop_stops_the_broker() -> Result<()> {
    let broker = Broker::start()?;
    let addr = broker.bootstrap();
    let dir = broker.dir().to_path_buf();
    drop(broker);
    let addr = addr.parse().expect("socket address");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
    assert!(!dir.exists(), "temp dir left behind");
    Ok(())
}
