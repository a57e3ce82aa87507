/**
 * Quoting for the remote side of ssh, which hands its command to the
 * guest's shell as one string.
 *
 * @module
 */

/**
 * Quotes one argument for a POSIX shell: bare when it is made only of safe
 * characters, else in single quotes with embedded single quotes escaped.
 */
export function shellQuote(arg: string): string {
  if (arg !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'"'"'`)}'`;
}

/** Quotes every argument and joins them into one command string. */
export function shellJoin(args: readonly string[]): string {
  return args.map(shellQuote).join(" ");
}
