/**
 * IPv4 arithmetic for banger's guest range.
 *
 * @module
 */

/** Parses dotted-quad text into a 32-bit number; throws on anything else. */
export function parseIpv4(text: string): number {
  const parts = text.split(".");
  if (
    parts.length !== 4 ||
    parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)
  ) {
    throw new RangeError(`Invalid IPv4 address "${text}"`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** Formats a 32-bit number as dotted-quad text. */
export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256)
    .join(".");
}

/** A parsed IPv4 network. */
export interface Cidr {
  network: number;
  prefix: number;
  /** Number of addresses, network and broadcast included. */
  size: number;
}

/** Parses `a.b.c.d/n`; the address is masked down to its network. */
export function parseCidr(text: string): Cidr {
  const [address, prefixText, extra] = text.split("/");
  const prefix = Number(prefixText);
  if (
    extra !== undefined || address === undefined ||
    !/^\d{1,2}$/.test(prefixText ?? "") || prefix < 8 || prefix > 30
  ) {
    throw new RangeError(
      `Invalid network "${text}": expected a.b.c.d/n with n from 8 to 30`,
    );
  }
  const size = 2 ** (32 - prefix);
  const network = Math.floor(parseIpv4(address) / size) * size;
  return { network, prefix, size };
}

/** True when `address` is a usable host address of `cidr`. */
export function isHostIn(cidr: Cidr, address: number): boolean {
  return address > cidr.network && address < cidr.network + cidr.size - 1;
}

/** The host index of `address` inside `cidr` (1 for the first host). */
export function hostIndex(cidr: Cidr, address: number): number {
  return address - cidr.network;
}
