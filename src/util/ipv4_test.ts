import { deepStrictEqual, throws } from "node:assert/strict";
import {
  formatIpv4,
  hostIndex,
  isHostIn,
  parseCidr,
  parseIpv4,
} from "./ipv4.ts";

Deno.test("parseIpv4() and formatIpv4() round-trip", () => {
  for (const ip of ["0.0.0.0", "172.30.0.1", "255.255.255.255", "10.1.2.3"]) {
    deepStrictEqual(formatIpv4(parseIpv4(ip)), ip);
  }
});

Deno.test("parseIpv4() refuses malformed addresses", () => {
  for (
    const bad of [
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "a.b.c.d",
      "1.2.3.4 ",
    ]
  ) {
    throws(() => parseIpv4(bad), RangeError);
  }
});

Deno.test("parseCidr() masks to the network and bounds the prefix", () => {
  const cidr = parseCidr("172.30.0.77/24");
  deepStrictEqual(formatIpv4(cidr.network), "172.30.0.0");
  deepStrictEqual(cidr.size, 256);
  for (const bad of ["0.0.0.0/0", "10.0.0.0/31", "10.0.0.0", "10.0.0.0/24/1"]) {
    throws(() => parseCidr(bad), RangeError);
  }
});

Deno.test("isHostIn() excludes the network and broadcast addresses", () => {
  const cidr = parseCidr("172.30.0.0/24");
  deepStrictEqual(isHostIn(cidr, parseIpv4("172.30.0.0")), false);
  deepStrictEqual(isHostIn(cidr, parseIpv4("172.30.0.1")), true);
  deepStrictEqual(isHostIn(cidr, parseIpv4("172.30.0.254")), true);
  deepStrictEqual(isHostIn(cidr, parseIpv4("172.30.0.255")), false);
  deepStrictEqual(isHostIn(cidr, parseIpv4("172.30.1.2")), false);
  deepStrictEqual(hostIndex(cidr, parseIpv4("172.30.0.9")), 9);
});
