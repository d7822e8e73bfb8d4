//! The generic control path on a real single-manager cluster: `Manager::query` answers from a linearizable read,
//! `Manager::control` reads, decides and proposes, and a refusal comes back typed, whether the decision refused
//! (nothing proposed) or the store did (a network in use).

mod common;

use common::cluster;
use skep_api::docker::{Ipam, IpamConfig, Network, NetworkAttachmentConfig, Service};
use skep_manager::control::{self, ControlError};
use skep_manager::store::{NetworkUser, Op};

fn network(id: &str) -> Op {
    Op::CreateNetwork {
        network: Box::new(Network {
            id: id.into(),
            name: id.into(),
            ipam: Ipam { config: vec![IpamConfig { subnet: "10.9.0.0/24".into(), ..Default::default() }], ..Default::default() },
            ..Default::default()
        }),
    }
}

fn service_on(id: &str, net: &str) -> Op {
    let mut s = Service { id: id.into(), ..Default::default() };
    s.spec.name = id.into();
    s.spec.task_template.networks = vec![NetworkAttachmentConfig { target: net.into(), ..Default::default() }];
    Op::CreateService { service: Box::new(s) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_proposes_what_the_decision_returns_and_refusals_come_back_typed() {
    let f = cluster().await;
    let m = &f.manager;
    // a decision's value and the op's index come back; the change is there for the next read
    let (id, applied) = m.control(|_| Ok(("app".to_string(), network("app")))).await.unwrap();
    assert_eq!(id, "app");
    let seen = m.query(|st| Ok((st.index >= applied.index, st.networks.contains_key("app")))).await.unwrap();
    assert_eq!(seen, (true, true));
    // a decision that refuses proposes nothing and its error comes back as is
    let e = m.control(|st| control::remove_node(st, "nope", false)).await.unwrap_err();
    assert!(matches!(e, ControlError::NotFound(_)), "{e:?}");
    let e = m.query(|_| Err::<(), _>(ControlError::Conflict("no".into()))).await.unwrap_err();
    assert_eq!(e, ControlError::Conflict("no".into()));
    // a refusal by the store (applied after the read) is typed too: a service names the network
    m.control(|_| Ok(((), service_on("s1", "app")))).await.unwrap();
    let e = m.control(|st| Ok(((), control::networks::remove(st, "app")?))).await.unwrap_err();
    assert_eq!(e, ControlError::InUse { network: "app".into(), by: NetworkUser::Service("s1".into()) });
    assert_eq!(e.status(), 400);
    assert!(m.query(|st| Ok(st.networks.contains_key("app"))).await.unwrap());
    f.stop().await;
}
