//! A Kafka-compatible broker for hookd's tests and bench: tansu's broker on SQLite storage.
//!
//! `hookd-test-kafka ADDRESS DATA_DIR [USER PASSWORD]` listens on `ADDRESS` (`127.0.0.1:port`)
//! and keeps its topics in `DATA_DIR`; with a user and password, clients must log in as that
//! user with SASL SCRAM-SHA-256 or SCRAM-SHA-512.

use bytes::Bytes;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use sha2::{Digest, Sha256, Sha512};
use tansu_broker::{NODE_ID, broker::Broker, coordinator::group::administrator::Controller};
use tansu_sans_io::ScramMechanism;
use tansu_storage::{BrokerRegistrationRequest, ScramCredential, Storage, StorageContainer};
use url::Url;
use uuid::Uuid;

const CLUSTER: &str = "hookd-test";
const ITERATIONS: u32 = 4096;

/// The SCRAM credential of `password` with digest `D`, as the broker stores one that a
/// client's `AlterUserScramCredentials` sets.
fn credential<D>(password: &str, salt: &[u8]) -> ScramCredential
where
    D: Digest
        + sha2::digest::core_api::BlockSizeUser
        + Clone
        + Sync
        + sha2::digest::FixedOutputReset,
{
    let mut salted = sha2::digest::generic_array::GenericArray::default();
    hash_password::<D>(password.as_bytes(), ITERATIONS, salt, &mut salted);
    let (client_key, server_key) = derive_keys::<D>(&salted);
    ScramCredential {
        salt: Bytes::copy_from_slice(salt),
        iterations: ITERATIONS as i32,
        stored_key: Bytes::copy_from_slice(&D::digest(client_key)[..]),
        server_key: Bytes::copy_from_slice(&server_key[..]),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, dir, login @ ..] = args.as_slice() else {
        panic!("usage: hookd-test-kafka 127.0.0.1:PORT DATA_DIR [USER PASSWORD]");
    };
    let listener = Url::parse(&format!("tcp://{address}")).expect("an address");
    // tansu opens a `sqlite://` database relative to the working directory.
    std::env::set_current_dir(dir).expect("the data directory");
    let storage = Url::parse("sqlite://tansu.db").expect("a storage url");
    if let [user, password] = login {
        // This store is only for the user: stopped before the broker opens its own.
        let stop = tokio_util::sync::CancellationToken::new();
        let store = StorageContainer::builder()
            .cancellation(stop.clone())
            .cluster_id(CLUSTER)
            .node_id(NODE_ID)
            .advertised_listener(listener.clone())
            .storage(storage.clone())
            .build()
            .await
            .expect("storage");
        // A credential belongs to a cluster the store knows.
        store
            .register_broker(BrokerRegistrationRequest {
                broker_id: NODE_ID,
                cluster_id: CLUSTER.into(),
                incarnation_id: Uuid::now_v7(),
                rack: None,
            })
            .await
            .expect("the cluster");
        let salt = Sha256::digest(user.as_bytes());
        for (mechanism, credential) in [
            (
                ScramMechanism::Scram256,
                credential::<Sha256>(password, &salt),
            ),
            (
                ScramMechanism::Scram512,
                credential::<Sha512>(password, &salt),
            ),
        ] {
            store
                .upsert_user_scram_credential(user, mechanism, credential)
                .await
                .expect("a user");
        }
        stop.cancel();
        drop(store);
    }
    // The user's store lets go of the database soon after it is stopped: until then, the
    // broker's finds it locked.
    let mut tries = 0;
    let broker = loop {
        let built = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(NODE_ID)
            .cluster_id(CLUSTER)
            .incarnation_id(Uuid::now_v7())
            .advertised_listener(listener.clone())
            .storage(storage.clone())
            .listener(listener.clone())
            .authentication(login.len() == 2)
            .silent(true)
            .build()
            .await;
        match built {
            Ok(broker) => break broker,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("broker not built yet ({e}); again");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("broker: {e}"),
        }
    };
    broker
        .main(tokio::time::Instant::now())
        .await
        .expect("the broker runs");
}
