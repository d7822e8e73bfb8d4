//! Small rtnetlink helpers: look links up by name, read attributes, and treat "already gone" as success where the
//! caller wants a thing to be absent. Each helper names the request in its error so a failure says what was asked.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec};

use super::error::{Error, Result};

/// The errno of a netlink error (positive, as in `libc::ENODEV`).
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

pub(crate) fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

/// The link called `name`, if there is one.
pub(crate) async fn link_by_name(nl: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    match nl.link().get().match_name(name).execute().try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(Error::Netlink {
            op: format!("get link {name}"),
            source: e,
        }),
    }
}

/// The index of the link called `name`, if there is one.
pub(crate) async fn index_of(nl: &Handle, name: &str) -> Result<Option<u32>> {
    Ok(link_by_name(nl, name).await?.map(|l| l.header.index))
}

/// Every link in the handle's namespace.
pub(crate) async fn links(nl: &Handle) -> Result<Vec<LinkMessage>> {
    nl.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("list links"))
}

pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Deletes a link; one that is already gone is fine (deleting a veth end takes its peer with it).
pub(crate) async fn del_link(nl: &Handle, index: u32, what: &str) -> Result<()> {
    match nl.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(Error::Netlink {
            op: format!("delete link {what}"),
            source: e,
        }),
    }
}

/// Deletes the link called `name` if there is one.
pub(crate) async fn del_link_named(nl: &Handle, name: &str) -> Result<()> {
    match index_of(nl, name).await? {
        Some(index) => del_link(nl, index, name).await,
        None => Ok(()),
    }
}

/// Deletes every link but loopback (which cannot be deleted) in the handle's namespace.
pub(crate) async fn del_all_links(nl: &Handle) -> Result<()> {
    for link in links(nl).await? {
        let name = link_name(&link).unwrap_or("?").to_string();
        if name != "lo" {
            del_link(nl, link.header.index, &name).await?;
        }
    }
    Ok(())
}

/// Sets a link up, optionally with an MTU and a bridge master.
pub(crate) async fn set_link(nl: &Handle, index: u32, what: &str, mtu: Option<u32>, master: Option<u32>) -> Result<()> {
    let mut msg = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        msg = msg.mtu(mtu);
    }
    if let Some(master) = master {
        msg = msg.controller(master);
    }
    nl.link()
        .set(msg.build())
        .execute()
        .await
        .map_err(nl_err(format!("set link {what} up")))
}

/// Adds (or keeps) `addr/prefix_len` on a link.
pub(crate) async fn add_address(nl: &Handle, index: u32, what: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
    nl.address()
        .add(index, IpAddr::V4(addr), prefix_len)
        .replace()
        .execute()
        .await
        .map_err(nl_err(format!("add address {addr}/{prefix_len} to {what}")))
}

/// The link that holds `addr`, if any.
pub(crate) async fn link_with_address(nl: &Handle, addr: Ipv4Addr) -> Result<Option<u32>> {
    let addrs: Vec<_> = nl
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("list addresses"))?;
    Ok(addrs.into_iter().find_map(|a| {
        let holds = a.attributes.iter().any(|attr| {
            matches!(attr, AddressAttribute::Address(IpAddr::V4(v)) | AddressAttribute::Local(IpAddr::V4(v)) if *v == addr)
        });
        holds.then_some(a.header.index)
    }))
}

/// A static VXLAN forwarding entry: frames for `mac` go to the VTEP `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FdbEntry {
    pub mac: [u8; 6],
    pub dst: Ipv4Addr,
}

/// The remote (`dst`-carrying) FDB entries of the VXLAN device `vxlan`.
pub(crate) async fn fdb_entries(nl: &Handle, vxlan: u32) -> Result<Vec<FdbEntry>> {
    let all: Vec<NeighbourMessage> = nl
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("list fdb"))?;
    Ok(all
        .into_iter()
        .filter(|m| m.header.ifindex == vxlan)
        .filter_map(|m| {
            let mac = lladdr(&m)?;
            let dst = m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => Some(*v),
                NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                    Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                _ => None,
            })?;
            Some(FdbEntry { mac, dst })
        })
        .collect())
}

/// `bridge fdb replace MAC dev VXLAN dst DST self permanent`.
pub(crate) async fn fdb_replace(nl: &Handle, vxlan: u32, entry: &FdbEntry) -> Result<()> {
    nl.neighbours()
        .add_bridge(vxlan, &entry.mac)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(IpAddr::V4(entry.dst))
        .replace()
        .execute()
        .await
        .map_err(nl_err(format!(
            "fdb add {} dst {}",
            super::names::format_mac(&entry.mac),
            entry.dst
        )))
}

/// `bridge fdb del MAC dev VXLAN dst DST self` (gone already is fine).
pub(crate) async fn fdb_delete(nl: &Handle, vxlan: u32, entry: &FdbEntry) -> Result<()> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = vxlan;
    msg.header.flags = NeighbourFlags::Own;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(entry.dst)));
    ignore_missing(
        nl.neighbours().del(msg).execute().await,
        format!("fdb del {} dst {}", super::names::format_mac(&entry.mac), entry.dst),
    )
}

/// The IPv4 neighbour entries (IP → MAC) on link `index`.
pub(crate) async fn neighbours(nl: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, [u8; 6])>> {
    let all: Vec<NeighbourMessage> = nl
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("list neighbours"))?;
    Ok(all
        .into_iter()
        .filter(|m| m.header.ifindex == index)
        .filter_map(|m| {
            let ip = m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => Some(*v),
                _ => None,
            })?;
            Some((ip, lladdr(&m)?))
        })
        .collect())
}

/// `ip neigh replace IP lladdr MAC dev LINK nud permanent`.
pub(crate) async fn neighbour_replace(nl: &Handle, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
    nl.neighbours()
        .add(index, IpAddr::V4(ip))
        .link_layer_address(&mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(nl_err(format!(
            "neigh add {ip} lladdr {}",
            super::names::format_mac(&mac)
        )))
}

/// `ip neigh del IP dev LINK` (gone already is fine).
pub(crate) async fn neighbour_delete(nl: &Handle, index: u32, ip: Ipv4Addr) -> Result<()> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    ignore_missing(nl.neighbours().del(msg).execute().await, format!("neigh del {ip}"))
}

fn lladdr(m: &NeighbourMessage) -> Option<[u8; 6]> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    })
}

fn ignore_missing(result: std::result::Result<(), rtnetlink::Error>, op: String) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ENODEV)) => Ok(()),
        Err(source) => Err(Error::Netlink { op, source }),
    }
}
