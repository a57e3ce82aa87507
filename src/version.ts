/** banger's version, shown by `banger --version` and checked across roles. */
export const VERSION = "0.1.0";
