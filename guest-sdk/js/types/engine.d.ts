// The globals the componentize-js engine (StarlingMonkey) gives a plugin
// that the SDK and the plugins use; `fetch`, timers, random and clocks are
// disabled by `courier build`, so they are not declared.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
declare function atob(data: string): string;
declare function btoa(data: string): string;
declare const console: { log(...data: unknown[]): void; error(...data: unknown[]): void };
