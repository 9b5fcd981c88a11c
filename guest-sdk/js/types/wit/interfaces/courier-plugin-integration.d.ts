/// <reference path="./courier-plugin-types.d.ts" />
declare module 'courier:plugin/integration@0.1.0' {
  /**
   * Returns the plugin's manifest. The host calls it once when it loads the
   * plugin (in a throwaway instance) and rejects the plugin if the manifest
   * is invalid; it must not send requests.
   */
  export function describe(): Manifest;
  /**
   * Runs the call named `call` with `input`, a JSON text that the host has
   * already validated against the call's input schema. Returns the output as
   * JSON text, or a `step-error`. Each invocation runs in a fresh instance.
   */
  export function invoke(call: string, input: string): string;
  export type Manifest = import('courier:plugin/types@0.1.0').Manifest;
  export type StepError = import('courier:plugin/types@0.1.0').StepError;
}
