/** Where a CLI or a worker finds Temporal: the frontend, the namespace and dbferry's task queue. */
export interface TemporalOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  /** TLS to the frontend: true uses the system's CAs; absent or false is plaintext. */
  tls?: boolean | TemporalTls;
  /** Temporal Cloud (or any frontend that takes one): sent as a bearer token, never logged. */
  apiKey?: string;
  /** gRPC headers from the profile (grpc_meta) or TEMPORAL_GRPC_META_*. */
  metadata?: Record<string, string>;
  /** Where these settings came from, for messages: flags, environment, a temporal.toml profile. */
  origin?: string;
}

/** The SDK's TLS settings, as envconfig reads them from a profile or TEMPORAL_TLS_*. */
export interface TemporalTls {
  serverNameOverride?: string;
  serverRootCACertificate?: Uint8Array;
  clientCertPair?: { crt: Uint8Array; key: Uint8Array };
}

/** The values when neither a flag, the environment nor a temporal.toml profile says otherwise. */
export const TEMPORAL_DEFAULTS: Readonly<Pick<TemporalOptions, 'address' | 'namespace' | 'taskQueue'>> = {
  address: 'localhost:7233',
  namespace: 'default',
  taskQueue: 'dbferry',
};

/** The SDK's connection options for these settings (the CLI's client and the worker's alike). */
export function connectionOptions(o: TemporalOptions) {
  return {
    address: o.address,
    ...(o.tls !== undefined ? { tls: o.tls } : {}),
    ...(o.apiKey ? { apiKey: o.apiKey } : {}),
    ...(o.metadata ? { metadata: o.metadata } : {}),
  };
}
