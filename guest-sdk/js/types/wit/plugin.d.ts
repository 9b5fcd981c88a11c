/// <reference path="./interfaces/courier-plugin-integration.d.ts" />
/// <reference path="./interfaces/courier-plugin-log.d.ts" />
/// <reference path="./interfaces/courier-plugin-outbound.d.ts" />
/// <reference path="./interfaces/courier-plugin-types.d.ts" />
declare module 'courier:plugin/plugin@0.1.0' {
  export type * as CourierPluginLog010 from 'courier:plugin/log@0.1.0'; // import courier:plugin/log@0.1.0
  export type * as CourierPluginOutbound010 from 'courier:plugin/outbound@0.1.0'; // import courier:plugin/outbound@0.1.0
  export type * as CourierPluginTypes010 from 'courier:plugin/types@0.1.0'; // import courier:plugin/types@0.1.0
  export * as integration from 'courier:plugin/integration@0.1.0'; // export courier:plugin/integration@0.1.0
}
