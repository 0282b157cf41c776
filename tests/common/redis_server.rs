//! Real `redis-server` processes for the tests of the Redis backend: one
//! per test, on a free loopback port, in a temporary directory, killed on
//! drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: TempDir,
    flags: Vec<String>,
}

impl RedisServer {
    /// Whether `redis-server` is installed; tests skip themselves (with a
    /// line on stderr) when it is not. .ci/run installs it.
    pub fn available() -> bool {
        let found = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            eprintln!("SKIPPED {test}: redis-server is not installed");
        }
        found
    }

    /// Starts a Redis on a free port with `flags` added.
    pub fn start(flags: &[&str]) -> RedisServer {
        RedisServer::start_on(free_port(), flags)
    }

    /// Starts a Redis on `port` (again, after a kill) with `flags` added.
    pub fn start_on(port: u16, flags: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let child = spawn(port, dir.path(), &flags);
        let server = RedisServer {
            child,
            port,
            dir,
            flags,
        };
        server.wait_for_pong();
        server
    }

    /// After [`RedisServer::kill`]: the same server again, on its port,
    /// in its directory (a cluster node finds its `nodes.conf` there and
    /// rejoins its cluster).
    pub fn restart(&mut self) {
        self.child = spawn(self.port, self.dir.path(), &self.flags);
        self.wait_for_pong();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP (`true`) or SIGCONT: a hung server whose sockets stay open.
    pub fn pause(&self, stopped: bool) {
        let signal = if stopped { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {signal} redis-server");
    }

    fn wait_for_pong(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16, dir: &std::path::Path, flags: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

/// A loopback port nothing listens on (as of now).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// A Redis Cluster of its own for a test: three masters with a replica
/// each, on free loopback ports, with a short `cluster-node-timeout` so
/// that a replica takes over a dead master within seconds.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6).map(|_| RedisServer::start_cluster_node()).collect();
        let addresses: Vec<String> = (nodes.iter())
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(created.status.success(), "redis-cli: {created:?}");
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// `redis-cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = (self.nodes.iter())
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// The node that is the master of `key`'s slot now.
    pub fn master_of(&mut self, key: &str) -> &mut RedisServer {
        let port = self.master_port_of(key);
        (self.nodes.iter_mut())
            .find(|node| node.port == port)
            .expect("the master is one of the nodes")
    }

    /// `CLUSTER FAILOVER` on the replica of `key`'s master.
    pub fn fail_over_to_replica_of(&self, key: &str) {
        let replica = self.replica_port_of(self.master_port_of(key));
        let client = redis::Client::open(format!("redis://127.0.0.1:{replica}")).unwrap();
        let mut connection = client.get_connection().unwrap();
        let _: String = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut connection)
            .unwrap();
    }

    /// The node that is the replica of the master of `key`'s slot now.
    pub fn replica_of(&mut self, key: &str) -> &mut RedisServer {
        let port = self.replica_port_of(self.master_port_of(key));
        (self.nodes.iter_mut())
            .find(|node| node.port == port)
            .expect("the replica is one of the nodes")
    }

    /// The port of the master of `key`'s slot.
    pub fn master_port_of(&self, key: &str) -> u16 {
        self.master_port_seen_by(self.nodes[0].port, key)
    }

    /// The port of the master of `key`'s slot as the node on `port` sees
    /// it (ask one that is not hung).
    pub fn master_port_seen_by(&self, port: u16, key: &str) -> u16 {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut connection = client.get_connection().unwrap();
        let _ = connection.set_read_timeout(Some(Duration::from_secs(2)));
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut connection)
            .unwrap();
        let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut connection)
            .unwrap();
        let number = |value: &redis::Value| match value {
            redis::Value::Int(n) => *n,
            other => panic!("unexpected CLUSTER SLOTS field {other:?}"),
        };
        for range in ranges {
            if (number(&range[0])..=number(&range[1])).contains(&slot) {
                let redis::Value::Array(master) = &range[2] else {
                    panic!("unexpected CLUSTER SLOTS entry {range:?}");
                };
                return number(&master[1]) as u16;
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// The port of the replica of the master on `master`, from the lines
    /// of `CLUSTER NODES` (`ID HOST:PORT@BUS FLAGS MASTER-ID ...`).
    fn replica_port_of(&self, master: u16) -> u16 {
        let client = redis::Client::open(self.nodes[0].url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut connection)
            .unwrap();
        let lines: Vec<Vec<&str>> = (nodes.lines())
            .map(|line| line.split(' ').collect())
            .collect();
        let port = |fields: &[&str]| -> u16 {
            let address = fields[1].split('@').next().unwrap();
            address.rsplit(':').next().unwrap().parse().unwrap()
        };
        let master_id = (lines.iter())
            .find(|fields| port(fields) == master)
            .map(|fields| fields[0])
            .expect("the master is listed");
        (lines.iter())
            .find(|fields| fields[3] == master_id)
            .map(|fields| port(fields))
            .unwrap_or_else(|| panic!("no replica of {master_id} in {nodes}"))
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ask = |node: &RedisServer, what: &[&str]| {
            let info = Command::new("redis-cli")
                .args(["-p", &node.port.to_string()])
                .args(what)
                .output()
                .expect("run redis-cli");
            String::from_utf8_lossy(&info.stdout).into_owned()
        };
        let ok = |node: &RedisServer| {
            let replication = ask(node, &["info", "replication"]);
            ask(node, &["cluster", "info"]).contains("cluster_state:ok")
                && (replication.contains("role:master")
                    || replication.contains("master_link_status:up"))
        };
        while !self.nodes.iter().all(ok) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl RedisServer {
    fn start_cluster_node() -> RedisServer {
        let mut port = free_port();
        while port > 55000 || TcpListener::bind(("127.0.0.1", port + 10000)).is_err() {
            port = free_port();
        }
        RedisServer::start_on(
            port,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ],
        )
    }
}
