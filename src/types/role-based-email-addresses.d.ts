declare module 'role-based-email-addresses' {
  /** Local parts (lower-case) that name a role or a group rather than a person: info, postmaster, sales, ... */
  const prefixes: string[];
  export default prefixes;
}
