declare module 'courier:plugin/log@0.1.0' {
  /**
   * Records one line. Never fails: past the step's log budget lines are
   * counted and dropped.
   */
  export function log(level: Level, message: string): void;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Fine detail.
   * ## `"debug"`
   * 
   * Diagnostics.
   * ## `"info"`
   * 
   * Normal events.
   * ## `"warn"`
   * 
   * Something unexpected that the plugin handled.
   * ## `"error"`
   * 
   * Something failed.
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
