// Addresses the hub never connects to (HUB_OUTBOUND_DENY), checked on the resolved address at
// connect time: a registered host name that later resolves to a denied address (DNS rebinding) is
// refused too. IPv4-mapped IPv6 addresses are checked as the IPv4 address they are.
import { BlockList, isIP } from 'node:net';

export class OutboundPolicy {
  private readonly deny = new BlockList();

  constructor(cidrs: readonly string[]) {
    // Unspecified addresses are no destination: Linux connects them to the local host.
    this.deny.addSubnet('0.0.0.0', 8, 'ipv4');
    this.deny.addAddress('::', 'ipv6');
    for (const cidr of cidrs) {
      const [addr, bits] = cidr.split('/');
      const family = isIP(addr ?? '');
      if (!family) throw new Error(`HUB_OUTBOUND_DENY: "${cidr}" is not an IP address or CIDR range`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.deny.addAddress(addr!, type);
      else {
        const prefix = Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
          throw new Error(`HUB_OUTBOUND_DENY: "${cidr}" has an invalid prefix length`);
        }
        this.deny.addSubnet(addr!, prefix, type);
      }
    }
  }

  /** True when a connection to this literal address must not be made. */
  denies(address: string): boolean {
    const family = isIP(address);
    if (family === 4) return this.deny.check(address, 'ipv4');
    if (family === 6) {
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
      if (mapped) return this.deny.check(mapped, 'ipv4');
      return this.deny.check(address, 'ipv6');
    }
    return true; // not an address at all: never connect
  }
}
