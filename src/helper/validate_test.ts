import { deepStrictEqual, throws } from "node:assert/strict";
import { RpcError } from "../protocol/envelope.ts";
import { parseCidr, parseIpv4 } from "../util/ipv4.ts";
import {
  checkAddress,
  checkBridgeName,
  checkOwner,
  checkTapName,
} from "./validate.ts";

const badRequest = (e: unknown) =>
  e instanceof RpcError && e.code === "bad_request";

Deno.test("checkBridgeName() accepts only banger's bridges", () => {
  deepStrictEqual(checkBridgeName("br-banger"), "br-banger");
  deepStrictEqual(checkBridgeName("br-banger2"), "br-banger2");
  for (
    const bad of [
      "eth0",
      "lo",
      "docker0",
      "br-banger;rm",
      "br-banger-long-name",
      "",
      "br-bangerÉ",
    ]
  ) {
    throws(() => checkBridgeName(bad), badRequest, bad);
  }
});

Deno.test("checkTapName() accepts only banger's taps", () => {
  deepStrictEqual(checkTapName("bgtap2"), "bgtap2");
  for (
    const bad of [
      "tap0",
      "eth0",
      "bgtap",
      "bgtap2 up",
      "bgtap$(id)",
      "bgtap123456",
    ]
  ) {
    throws(() => checkTapName(bad), badRequest, bad);
  }
});

Deno.test("checkAddress() accepts host addresses of the range with its prefix only", () => {
  const cidr = parseCidr("172.30.0.0/24");
  deepStrictEqual(
    checkAddress(cidr, "172.30.0.1", 24),
    parseIpv4("172.30.0.1"),
  );
  const cases: [string, number][] = [
    ["0.0.0.0", 0],
    ["172.30.0.0", 24],
    ["172.30.0.255", 24],
    ["172.30.1.1", 24],
    ["10.0.0.1", 24],
    ["172.30.0.1", 16],
    ["172.30.0.1; reboot", 24],
  ];
  for (const [address, prefix] of cases) {
    throws(
      () => checkAddress(cidr, address, prefix),
      badRequest,
      `${address}/${prefix}`,
    );
  }
});

Deno.test("checkOwner() accepts only the owner's uid", () => {
  deepStrictEqual(checkOwner(1000, 1000), 1000);
  throws(() => checkOwner(1000, 0), badRequest);
});
