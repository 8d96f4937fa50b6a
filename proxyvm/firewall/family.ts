/**
 * Everything that differs between the IPv4 and the IPv6 firewall table: names,
 * nft expressions and constants. The compiler is written once against this.
 */
import { PRIMARY_DNS, SECONDARY_DNS } from "../../shared/keys.js";

export type Family = 4 | 6;

export interface FamilySyntax {
  readonly family: Family;
  /** nft table family and name (`table ip qubes-fakeip-fw`) */
  readonly table: string;
  readonly addrType: string;
  readonly saddr: string;
  readonly daddr: string;
  /** the originator of a conntrack entry, whichever direction the packet goes */
  readonly ctOrigSaddr: string;
  /** the destination before DNAT (the virtual DNS addresses are DNATed in prerouting) */
  readonly ctOrigDaddr: string;
  readonly icmpProto: string;
  readonly icmpType: string;
  readonly reject: string;
  readonly anyNet: string;
  readonly dnsServers: readonly string[];
  /** request type → reply type of the ICMP queries conntrack tracks (nf_conntrack_proto_icmp{,v6}.c) */
  readonly icmpReplies: ReadonlyMap<number, number>;
}

/**
 * Table names: our own tables, never shared with the NAT table or Qubes'
 * `qubes` table, so a full reload can delete and recreate them in one
 * transaction without touching anything else.
 */
export const TABLE4 = "qubes-fakeip-fw";
export const TABLE6 = "qubes-fakeip-fw6";

export const FAMILIES: Readonly<Record<Family, FamilySyntax>> = {
  4: {
    family: 4,
    table: `ip ${TABLE4}`,
    addrType: "ipv4_addr",
    saddr: "ip saddr",
    daddr: "ip daddr",
    ctOrigSaddr: "ct original ip saddr",
    ctOrigDaddr: "ct original ip daddr",
    icmpProto: "icmp",
    icmpType: "icmp type",
    // spec/firewall.md: drop answers with ICMP administratively prohibited
    reject: "reject with icmp type admin-prohibited",
    anyNet: "0.0.0.0/0",
    // spec/keys.md: the virtual DNS addresses, never faked
    dnsServers: [PRIMARY_DNS, SECONDARY_DNS],
    icmpReplies: new Map([
      [8, 0],
      [13, 14],
      [15, 16],
      [17, 18],
    ]),
  },
  6: {
    family: 6,
    table: `ip6 ${TABLE6}`,
    addrType: "ipv6_addr",
    saddr: "ip6 saddr",
    daddr: "ip6 daddr",
    ctOrigSaddr: "ct original ip6 saddr",
    ctOrigDaddr: "ct original ip6 daddr",
    icmpProto: "ipv6-icmp",
    icmpType: "icmpv6 type",
    reject: "reject with icmpv6 type admin-prohibited",
    anyNet: "::/0",
    // Qubes has no IPv6 virtual DNS address: `specialtarget=dns` matches nothing in the IPv6 table
    dnsServers: [],
    icmpReplies: new Map([
      [128, 129],
      [139, 140],
    ]),
  },
};

export function familyOf(address: string): Family {
  return address.includes(":") ? 6 : 4;
}

/**
 * Chain name suffix of a native address. nft identifiers allow `.` but not `:`
 * (and quoted chain names are not accepted in every statement), so IPv6
 * colons become `-`; the mapping is one to one for canonical addresses.
 */
export function chainSuffix(address: string): string {
  return address.replaceAll(":", "-");
}
