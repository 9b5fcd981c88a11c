//! Address checks: every spelling of an IPv4 address that a URL accepts is
//! judged as that address, IPv6 forms that carry an IPv4 address are never
//! judged more leniently than it, and an operator's network allows exactly
//! what it contains.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use courier_egress::head::{HostLists, check_url};
use courier_egress::{AllowedHost, NetworkPolicy, special_range};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|input: ([u8; 4], [u8; 16], u8)| {
    let (v4_bytes, v6_bytes, prefix) = input;
    let v4 = Ipv4Addr::from(v4_bytes);
    let v6 = Ipv6Addr::from(v6_bytes);
    let refuse_all = NetworkPolicy::default();

    // The IPv4-mapped form is the same address; other carrying forms are
    // refused whenever the address they carry is.
    let [a, b, c, d] = v4_bytes;
    let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
    assert_eq!(
        refuse_all.check(v4.to_ipv6_mapped().into()).is_ok(),
        refuse_all.check(v4.into()).is_ok(),
        "{v4}"
    );
    if special_range(v4.into()).is_some() {
        for carried in [
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, !hi, !lo),
        ] {
            assert!(
                refuse_all.check(carried.into()).is_err(),
                "{carried} carries refused {v4}"
            );
        }
    }

    // Every spelling the URL parser accepts for the address is judged as it.
    let any: Vec<AllowedHost> = vec!["http://*:*".parse().unwrap()];
    let lists = HostLists {
        plugin: &any,
        operator: &any,
        tenant: None,
    };
    let n = u32::from(v4);
    let spellings = [
        format!("{v4}"),
        format!("{n}"),
        format!("{n:#x}"),
        format!("0{n:o}"),
        format!("{a}.{}", n & 0xff_ffff),
        format!("{a}.{b}.{}", n & 0xffff),
        format!("{a:#x}.0{b:o}.{c}.{d:#X}"),
        format!("[::ffff:{v4}]"),
    ];
    for spelling in &spellings {
        let url = Url::parse(&format!("http://{spelling}:80/"))
            .unwrap_or_else(|e| panic!("{spelling}: {e}"));
        let expected = special_range(v4.into()).is_none();
        assert_eq!(
            check_url(&url, lists, &refuse_all).is_ok(),
            expected,
            "{spelling} spells {v4}"
        );
    }

    // An operator's network allows exactly its addresses (and what is not special).
    let ip = IpAddr::V6(v6);
    let net = ipnet::IpNet::V6(ipnet::Ipv6Net::new(v6, prefix % 129).unwrap().trunc());
    let policy = NetworkPolicy::allowing(vec![net]);
    let canonical = ip.to_canonical();
    let expected = net.contains(&canonical) || special_range(canonical).is_none();
    assert_eq!(policy.check(ip).is_ok(), expected, "{ip} against {net}");
});
