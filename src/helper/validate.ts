/**
 * Checks the helper applies to every argument before a privileged step. A
 * compromised daemon must not be able to touch interfaces, addresses or
 * files that are not banger's own.
 *
 * @module
 */
import { RpcError } from "../protocol/envelope.ts";
import { type Cidr, formatIpv4, isHostIn, parseIpv4 } from "../util/ipv4.ts";

/** Bridges banger owns: `br-banger` plus up to 6 more of `a-z0-9`. */
export const BRIDGE_NAME = /^br-banger[a-z0-9]{0,6}$/;
/** Taps banger owns: `bgtap` plus a host index. */
export const TAP_NAME = /^bgtap[0-9]{1,5}$/;
/** Idle taps of the warm pool: `bgpool` plus a pool index. */
export const POOL_TAP_NAME = /^bgpool[0-9]{1,3}$/;
/** The only address the helper routes a DNS domain to: the daemon's. */
export const RESOLVER_ADDRESS = "127.0.0.1";

/** Throws `bad_request` unless `name` is one of banger's bridge names. */
export function checkBridgeName(name: string): string {
  if (!BRIDGE_NAME.test(name)) {
    throw new RpcError(
      "bad_request",
      `Refusing bridge "${
        printable(name)
      }": not a banger bridge name (br-banger…)`,
    );
  }
  return name;
}

/** Throws `bad_request` unless `name` is one of banger's tap names. */
export function checkTapName(name: string): string {
  if (!TAP_NAME.test(name)) {
    throw new RpcError(
      "bad_request",
      `Refusing tap "${printable(name)}": not a banger tap name (bgtap<n>)`,
    );
  }
  return name;
}

/**
 * Throws `bad_request` unless `address` is a host address inside the
 * configured range and `prefix` is the range's prefix.
 */
export function checkAddress(
  cidr: Cidr,
  address: string,
  prefix: number,
): number {
  let value: number;
  try {
    value = parseIpv4(address);
  } catch {
    throw new RpcError(
      "bad_request",
      `Refusing address "${printable(address)}": not an IPv4 address`,
    );
  }
  if (!isHostIn(cidr, value) || prefix !== cidr.prefix) {
    throw new RpcError(
      "bad_request",
      `Refusing address "${address}/${prefix}": outside banger's range ${
        formatIpv4(cidr.network)
      }/${cidr.prefix}`,
    );
  }
  return value;
}

/**
 * Throws `bad_request` unless `address` is one guest host address inside
 * the configured range (a bare dotted quad: no prefix, no network, no
 * broadcast). NAT rules are scoped to exactly this /32.
 */
export function checkGuestAddress(cidr: Cidr, address: string): number {
  let value: number;
  try {
    value = parseIpv4(address);
  } catch {
    throw new RpcError(
      "bad_request",
      `Refusing address "${printable(address)}": not an IPv4 address`,
    );
  }
  if (!isHostIn(cidr, value)) {
    throw new RpcError(
      "bad_request",
      `Refusing address "${address}": outside banger's range ${
        formatIpv4(cidr.network)
      }/${cidr.prefix}`,
    );
  }
  return value;
}

/**
 * Throws `bad_request` unless `tap` is the tap of guest `address`: banger
 * puts the guest holding host index n of the range behind `bgtap<n>`, so a
 * NAT rule can only ever be keyed on the address's own tap.
 */
export function checkTapOfAddress(cidr: Cidr, tap: string, address: number) {
  const expected = `bgtap${address - cidr.network}`;
  if (tap !== expected) {
    throw new RpcError(
      "bad_request",
      `Refusing NAT for "${formatIpv4(address)}" on tap "${
        printable(tap)
      }": that address is behind "${expected}"`,
    );
  }
}

/** Throws `bad_request` unless `port` is an unprivileged TCP/UDP port. */
export function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new RpcError(
      "bad_request",
      `Refusing port ${port}: expected a port from 1024 to 65535`,
    );
  }
  return port;
}

/** Throws `unauthorized`-free `bad_request` unless `uid` is the owner's. */
export function checkOwner(ownerUid: number, uid: number): number {
  if (uid !== ownerUid) {
    throw new RpcError(
      "bad_request",
      `Refusing owner uid ${uid}: taps belong to the owner uid ${ownerUid}`,
    );
  }
  return uid;
}

/** Quotes untrusted text for an error message without control characters. */
function printable(text: string): string {
  return text.slice(0, 40).replace(/[^\x20-\x7e]/g, "?");
}
