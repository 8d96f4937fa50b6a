import t from "tap";
import { InvalidInputError } from "../../../shared/errors.js";
import {
  type FirewallRule,
  formatApiRule,
  formatQubesDbRule,
  parseApiRule,
  parseQubesDbRule,
} from "../../../shared/firewall/index.js";

/** [API text, parsed rule, canonical API text] */
const validApiRules: Array<[string, FirewallRule, string]> = [
  ["action=accept", { action: "accept" }, "action=accept"],
  ["action=drop", { action: "drop" }, "action=drop"],
  [
    "action=accept dsthost=example.com proto=tcp dstports=443-443 expire=1767225600 comment=web",
    {
      action: "accept",
      dsthost: "example.com",
      proto: "tcp",
      dstports: { from: 443, to: 443 },
      expire: 1767225600,
      comment: "web",
    },
    "action=accept dsthost=example.com proto=tcp dstports=443-443 expire=1767225600 comment=web",
  ],
  [
    "proto=udp action=drop dstports=53",
    { action: "drop", proto: "udp", dstports: { from: 53, to: 53 } },
    "action=drop proto=udp dstports=53-53",
  ],
  [
    "action=accept proto=tcp dstports=0-65535",
    { action: "accept", proto: "tcp", dstports: { from: 0, to: 65535 } },
    "action=accept proto=tcp dstports=0-65535",
  ],
  [
    "action=accept proto=tcp dstports=080-0443",
    { action: "accept", proto: "tcp", dstports: { from: 80, to: 443 } },
    "action=accept proto=tcp dstports=80-443",
  ],
  [
    "action=accept proto=tcp dstports=9-10",
    { action: "accept", proto: "tcp", dstports: { from: 9, to: 10 } },
    "action=accept proto=tcp dstports=9-10",
  ],
  [
    "action=accept dst4=192.0.2.1",
    { action: "accept", dst4: "192.0.2.1/32" },
    "action=accept dst4=192.0.2.1/32",
  ],
  [
    "action=accept dst4=192.0.2.0/24",
    { action: "accept", dst4: "192.0.2.0/24" },
    "action=accept dst4=192.0.2.0/24",
  ],
  [
    "action=accept dst4=192.0.2.77/24",
    { action: "accept", dst4: "192.0.2.0/24" },
    "action=accept dst4=192.0.2.0/24",
  ],
  ["action=accept dst4=0.0.0.0/0", { action: "accept", dst4: "0.0.0.0/0" }, "action=accept dst4=0.0.0.0/0"],
  ["action=accept dst6=::/0", { action: "accept", dst6: "::/0" }, "action=accept dst6=::/0"],
  [
    "action=drop dst6=2001:DB8:0:0:0:0:0:1",
    { action: "drop", dst6: "2001:db8::1/128" },
    "action=drop dst6=2001:db8::1/128",
  ],
  [
    "action=drop dst6=2001:db8::/32",
    { action: "drop", dst6: "2001:db8::/32" },
    "action=drop dst6=2001:db8::/32",
  ],
  [
    "action=accept dsthost=192.168.0.0/24 proto=tcp",
    { action: "accept", dst4: "192.168.0.0/24", proto: "tcp" },
    "action=accept dst4=192.168.0.0/24 proto=tcp",
  ],
  [
    "action=accept dsthost=198.51.100.7",
    { action: "accept", dst4: "198.51.100.7/32" },
    "action=accept dst4=198.51.100.7/32",
  ],
  [
    "action=accept dsthost=2001:db8::5",
    { action: "accept", dst6: "2001:db8::5/128" },
    "action=accept dst6=2001:db8::5/128",
  ],
  [
    "action=accept dstname=www.Qubes-OS.org",
    { action: "accept", dsthost: "www.qubes-os.org" },
    "action=accept dsthost=www.qubes-os.org",
  ],
  [
    "action=accept dsthost=_srv.example_1.org",
    { action: "accept", dsthost: "_srv.example_1.org" },
    "action=accept dsthost=_srv.example_1.org",
  ],
  [
    "action=accept dsthost=localhost",
    { action: "accept", dsthost: "localhost" },
    "action=accept dsthost=localhost",
  ],
  [
    "action=accept proto=icmp icmptype=8",
    { action: "accept", proto: "icmp", icmptype: 8 },
    "action=accept proto=icmp icmptype=8",
  ],
  [
    "action=accept proto=icmp icmptype=0",
    { action: "accept", proto: "icmp", icmptype: 0 },
    "action=accept proto=icmp icmptype=0",
  ],
  [
    "action=accept specialtarget=dns",
    { action: "accept", specialtarget: "dns" },
    "action=accept specialtarget=dns",
  ],
  [
    "action=accept specialtarget=dns proto=udp dstports=53 dst4=10.139.1.1",
    {
      action: "accept",
      specialtarget: "dns",
      proto: "udp",
      dstports: { from: 53, to: 53 },
      dst4: "10.139.1.1/32",
    },
    "action=accept dst4=10.139.1.1/32 proto=udp dstports=53-53 specialtarget=dns",
  ],
  ["action=drop expire=0", { action: "drop", expire: 0 }, "action=drop expire=0"],
  ["action=accept comment=a b  c", { action: "accept", comment: "a b  c" }, "action=accept comment=a b  c"],
  ["action=accept comment=", { action: "accept" }, "action=accept"],
  [
    "action=accept comment=  spaced  ",
    { action: "accept", comment: "spaced" },
    "action=accept comment=spaced",
  ],
  [
    "action=accept comment=Zürich [lab]: 1;2,3./-_",
    { action: "accept", comment: "Zürich [lab]: 1;2,3./-_" },
    "action=accept comment=Zürich [lab]: 1;2,3./-_",
  ],
  [" action=accept proto=tcp ", { action: "accept", proto: "tcp" }, "action=accept proto=tcp"],
];

t.test("parseApiRule accepts every valid form and formatApiRule gives the canonical text", async (t) => {
  for (const [text, rule, canonical] of validApiRules) {
    t.same(parseApiRule(text), rule, text);
    t.equal(formatApiRule(parseApiRule(text)), canonical, text);
    t.same(parseApiRule(canonical), rule, `canonical ${canonical}`);
  }
});

t.test("parsed rules are frozen", async (t) => {
  const rule = parseApiRule("action=accept proto=tcp dstports=1-2");
  t.ok(Object.isFrozen(rule));
  t.ok(Object.isFrozen(rule.dstports));
});

const prefix = (text: string) => `Cannot parse firewall rule "${text}": `;
/** [API text, reason after the common prefix] */
const invalidApiRules: Array<[string, string]> = [
  ["action=accept proto=tcp dstports=99999", 'option "dstports": port 99999 is out of range 0..65535'],
  ["action=accept proto=tcp dstports=1-65536", 'option "dstports": port 65536 is out of range 0..65535'],
  ["action=accept proto=tcp dstports=443-80", 'option "dstports": range 443-80 starts after it ends'],
  ["action=accept proto=tcp dstports=80-", 'option "dstports": "80-" is not a port or a port range N-M'],
  ["action=accept proto=tcp dstports=-80", 'option "dstports": "-80" is not a port or a port range N-M'],
  ["action=accept proto=tcp dstports=http", 'option "dstports": "http" is not a port or a port range N-M'],
  ["action=accept proto=tcp dstports=1-2-3", 'option "dstports": "1-2-3" is not a port or a port range N-M'],
  ["action=accept dstports=80", 'option "dstports": only valid with proto=tcp or proto=udp'],
  ["action=accept proto=icmp dstports=80", 'option "dstports": only valid with proto=tcp or proto=udp'],
  ["action=accept icmptype=8", 'option "icmptype": only valid with proto=icmp'],
  ["action=accept proto=tcp icmptype=8", 'option "icmptype": only valid with proto=icmp'],
  ["action=accept proto=icmp icmptype=256", 'option "icmptype": icmp type 256 is out of range 0..255'],
  ["action=accept proto=icmp icmptype=echo", 'option "icmptype": "echo" is not a number'],
  ["action=allow", 'option "action": "allow" is not accept or drop'],
  ["action=ACCEPT", 'option "action": "ACCEPT" is not accept or drop'],
  ["proto=tcp", 'option "action": missing (every rule needs action=accept or action=drop)'],
  ["", 'option "action": missing (every rule needs action=accept or action=drop)'],
  ["comment=x", 'option "action": missing (every rule needs action=accept or action=drop)'],
  ["action=accept proto=sctp", 'option "proto": "sctp" is not tcp, udp or icmp'],
  ["action=accept proto=tcp proto=udp", 'option "proto": given more than once'],
  ["action=accept action=drop", 'option "action": given more than once'],
  [
    "action=accept dst4=192.0.2.1 dsthost=example.com",
    'options "dst4" and "dsthost": at most one destination per rule',
  ],
  [
    "action=accept dsthost=example.com dstname=example.org",
    'options "dsthost" and "dstname": at most one destination per rule',
  ],
  ["action=accept dst4=192.0.2.1 dst6=::1", 'options "dst4" and "dst6": at most one destination per rule'],
  ["action=accept dst4=1.2.3", 'option "dst4": "1.2.3" is not an IPv4 address (it needs exactly three dots)'],
  [
    "action=accept dst4=1.2.3.4.5",
    'option "dst4": "1.2.3.4.5" is not an IPv4 address (it needs exactly three dots)',
  ],
  [
    "action=accept dsthost=10.1",
    'option "dsthost": "10.1" is not an IPv4 address (it needs exactly three dots)',
  ],
  ["action=accept dst4=192.0.2.256", 'option "dst4": "192.0.2.256" is not an IPv4 address'],
  ["action=accept dst4=192.0.2.01", 'option "dst4": "192.0.2.01" is not an IPv4 address'],
  [
    "action=accept dst4=example.com",
    'option "dst4": "example.com" is not an IPv4 address (it needs exactly three dots)',
  ],
  ["action=accept dst4=::1", 'option "dst4": "::1" is not an IPv4 address (it needs exactly three dots)'],
  ["action=accept dst4=192.0.2.0/33", 'option "dst4": prefix length 33 is out of range 0..32'],
  ["action=accept dst4=192.0.2.0/", 'option "dst4": prefix length "" is not a number'],
  ["action=accept dst4=192.0.2.0/x", 'option "dst4": prefix length "x" is not a number'],
  ["action=accept dst4=192.0.2.0/24/8", 'option "dst4": "192.0.2.0/24/8" has more than one "/"'],
  ["action=accept dst6=2001:db8::/129", 'option "dst6": prefix length 129 is out of range 0..128'],
  ["action=accept dst6=2001:db8:::1", 'option "dst6": "2001:db8:::1" is not an IPv6 address'],
  ["action=accept dst6=192.0.2.1", 'option "dst6": "192.0.2.1" is not an IPv6 address'],
  ["action=accept dsthost=2001:db8::g", 'option "dsthost": "2001:db8::g" is not an IPv6 address'],
  [
    "action=accept dsthost=ex[am]ple.com",
    'option "dsthost": "ex[am]ple.com" is not a DNS name (allowed: a-z 0-9 . _ -)',
  ],
  [
    "action=accept dsthost=a..b",
    'option "dsthost": "a..b" is not a DNS name (every label needs 1..63 characters)',
  ],
  [
    "action=accept dsthost=example.com.",
    'option "dsthost": "example.com." is not a DNS name (every label needs 1..63 characters)',
  ],
  [
    `action=accept dsthost=${"a".repeat(64)}.org`,
    `option "dsthost": "${"a".repeat(64)}.org" is not a DNS name (every label needs 1..63 characters)`,
  ],
  [
    "action=accept dsthost=0x7f000001",
    'option "dsthost": "0x7f000001" is neither an IP address nor a DNS name',
  ],
  ["action=accept dsthost=host.123", 'option "dsthost": "host.123" is neither an IP address nor a DNS name'],
  ["action=accept specialtarget=dhcp", 'option "specialtarget": "dhcp" is not dns'],
  [
    "action=accept expire=+3600",
    'option "expire": value "+3600" has characters other than letters, digits and :;,./-_[]',
  ],
  ["action=accept expire=soon", 'option "expire": "soon" is not a UNIX time (digits only)'],
  ["action=accept expire=1234567890123456", 'option "expire": 1234567890123456 is too large for a UNIX time'],
  [
    "action=accept comment=it's",
    'option "comment": "it\'s" has characters other than letters, digits, spaces and :;,./-_[]',
  ],
  [
    "action=accept comment=a\tb",
    'option "comment": "a\\x09b" has characters other than letters, digits, spaces and :;,./-_[]',
  ],
  [`action=accept comment=${"c".repeat(513)}`, 'option "comment": longer than 512 characters'],
  ["action=accept foo=bar", 'option "foo": unknown option'],
  ["action=accept Action=drop", 'option "Action": unknown option'],
  ["action=accept dsthost=a=b", 'option "dsthost": value "a=b" has a second "="'],
  ["action=accept dsthost=", 'option "dsthost": empty value'],
  ["action=accept  proto=tcp", "empty option (options are separated by single spaces)"],
  ["action=accept\tproto=tcp", 'option "action": value "accept\\x09proto=tcp" has a second "="'],
  ["action=accept tcp", 'option "tcp": no "=" (options are name=value)'],
  [
    "action=accept dsthost=exa$mple.com",
    'option "dsthost": value "exa$mple.com" has characters other than letters, digits and :;,./-_[]',
  ],
  [
    "action=accept dsthost=exa\u0000mple.com",
    'option "dsthost": value "exa\\x00mple.com" has characters other than letters, digits and :;,./-_[]',
  ],
  [
    "action=accept dsthost=ex\u00e4mple.com",
    'option "dsthost": value "ex\\xe4mple.com" has characters other than letters, digits and :;,./-_[]',
  ],
  [`action=accept dsthost=${"a".repeat(256)}`, 'option "dsthost": value longer than 255 characters'],
  [
    `action=accept dsthost=${"a.".repeat(126)}ab`,
    `option "dsthost": "${"a.".repeat(80)}..." is longer than 253 characters`,
  ],
  [
    "action=accept comment=x=1 proto=tcp",
    'option "comment": "x=1 proto=tcp" has characters other than letters, digits, spaces and :;,./-_[]',
  ],
  ["action=accept dsthost=mycomment=x.org", 'option "dsthost": value "mycomment=x.org" has a second "="'],
];

t.test("parseApiRule rejects every invalid rule with a message naming the rule and the option", async (t) => {
  for (const [text, reason] of invalidApiRules) {
    t.throws(
      () => parseApiRule(text),
      new InvalidInputError(prefix(showForTest(text)) + reason),
      JSON.stringify(text),
    );
  }
});

/** The message quotes at most 160 characters of the rule, escaped. */
function showForTest(text: string): string {
  const escaped = (s: string) =>
    s.replace(/[^\x20-\x7e]|["\\]/gu, (c) =>
      c === '"' || c === "\\" ? `\\${c}` : `\\x${(c.codePointAt(0) ?? 0).toString(16).padStart(2, "0")}`,
    );
  return text.length > 160 ? `${escaped(text.slice(0, 160))}...` : escaped(text);
}

t.test("a rule longer than 2048 characters is rejected before it is parsed", async (t) => {
  const text = `action=accept comment=${"x".repeat(2100)}`;
  t.throws(
    () => parseApiRule(text),
    new InvalidInputError(`${prefix(`${text.slice(0, 160)}...`)}longer than 2048 characters`),
  );
});

t.test("a value that is not text is rejected", async (t) => {
  t.throws(
    () => parseApiRule(42 as unknown as string),
    new InvalidInputError('Cannot parse firewall rule "42": not text'),
  );
});

/** [QubesDB text, parsed rule] */
const validQubesDbRules: Array<[string, FirewallRule]> = [
  [
    "action=accept proto=tcp dst4=192.0.2.0/24 dstports=443-443",
    { action: "accept", proto: "tcp", dst4: "192.0.2.0/24", dstports: { from: 443, to: 443 } },
  ],
  ["action=drop", { action: "drop" }],
  [
    "action=accept dsthost=www.qubes-os.org proto=tcp dstports=443-443",
    { action: "accept", dsthost: "www.qubes-os.org", proto: "tcp", dstports: { from: 443, to: 443 } },
  ],
  ["action=accept dst6=::/0", { action: "accept", dst6: "::/0" }],
  ["action=accept specialtarget=dns", { action: "accept", specialtarget: "dns" }],
  ["action=accept proto=icmp icmptype=3", { action: "accept", proto: "icmp", icmptype: 3 }],
];

t.test("parseQubesDbRule accepts what dom0 publishes", async (t) => {
  for (const [text, rule] of validQubesDbRules) t.same(parseQubesDbRule(text), rule, text);
});

const invalidQubesDbRules: Array<[string, string]> = [
  ["action=accept expire=1767225600", 'option "expire": not part of the QubesDB form'],
  ["action=accept comment=x", 'option "comment": not part of the QubesDB form'],
  ["action=accept dstname=example.com", 'option "dstname": not part of the QubesDB form'],
  ["action=accept ", "empty option (options are separated by single spaces)"],
  [" action=accept", "empty option (options are separated by single spaces)"],
  ["action=accept proto=tcp dstports=99999", 'option "dstports": port 99999 is out of range 0..65535'],
  ["action=accept\nproto=tcp", 'option "action": value "accept\\x0aproto=tcp" has a second "="'],
];

t.test("parseQubesDbRule rejects what is not the QubesDB form", async (t) => {
  for (const [text, reason] of invalidQubesDbRules) {
    t.throws(
      () => parseQubesDbRule(text),
      new InvalidInputError(prefix(showForTest(text)) + reason),
      JSON.stringify(text),
    );
  }
});

t.test("API and QubesDB forms round-trip, the QubesDB form without expire and comment", async (t) => {
  const cases: Array<[string, string]> = [
    [
      "action=accept dsthost=example.com proto=tcp dstports=443 expire=1767225600 comment=web",
      "action=accept dsthost=example.com proto=tcp dstports=443-443",
    ],
    ["action=drop dst6=2001:db8::1", "action=drop dst6=2001:db8::1/128"],
    ["action=accept dsthost=192.168.0.0/24 proto=tcp", "action=accept dst4=192.168.0.0/24 proto=tcp"],
    ["action=accept proto=icmp icmptype=8 comment=ping", "action=accept proto=icmp icmptype=8"],
    ["action=accept specialtarget=dns", "action=accept specialtarget=dns"],
  ];
  for (const [api, qubesdb] of cases) {
    const rule = parseApiRule(api);
    t.equal(formatQubesDbRule(rule), qubesdb, api);
    const back = parseQubesDbRule(qubesdb);
    const { expire: _expire, comment: _comment, ...withoutApiOnly } = rule;
    t.same(back, withoutApiOnly, qubesdb);
    t.equal(formatApiRule(back), formatQubesDbRule(back), `${qubesdb} reads the same in both forms`);
  }
});

t.test("formatting checks hand-made rules and writes them canonical", async (t) => {
  t.equal(formatApiRule({ action: "accept", dst4: "192.0.2.9" }), "action=accept dst4=192.0.2.9/32");
  t.equal(
    formatQubesDbRule({ action: "accept", dsthost: "2001:db8::1" }),
    "action=accept dst6=2001:db8::1/128",
  );
  t.throws(
    () => formatApiRule({ action: "accept", dsthost: "bad name" }),
    new InvalidInputError(
      'Cannot validate firewall rule "action=accept dsthost=bad name": option "dsthost": value "bad name" has characters other than letters, digits and :;,./-_[]',
    ),
  );
});
