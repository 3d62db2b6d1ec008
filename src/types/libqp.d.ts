declare module 'libqp' {
  export function encode(buffer: Buffer | string): string;
  export function wrap(str: string, lineLength?: number): string;
}
