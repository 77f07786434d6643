import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway PKI for a test: a CA, a server certificate for 127.0.0.1, a client certificate, and an unrelated CA. */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting it must fail. */
  otherCaCert: string;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-pki-'));
  const f = (name: string) => join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ca = (name: string) =>
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`)]);
  const signed = (name: string, cn: string, ext: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)]);
    writeFileSync(f(`${name}.ext`), ext);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('test-ca.pem'), '-CAkey', f('test-ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
  };
  ca('test-ca');
  ca('other-ca');
  signed('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  signed('client', 'dbferry-worker', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caCert: f('test-ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCaCert: f('other-ca.pem'),
  };
}

export interface TlsFront {
  address: string;
  /** Calls refused for a missing or wrong API key. */
  refused: number;
  close(): Promise<void>;
}

/**
 * What Temporal Cloud or an mTLS cluster looks like to a client, in front of the plaintext dev
 * server (`temporal server start-dev` has no TLS): gRPC over HTTP/2 with TLS, a client
 * certificate signed by the test CA required, and `authorization: Bearer <apiKey>` checked on
 * every call. Calls are forwarded to the dev server as they are, trailers included.
 */
export async function startTlsFront(upstream: string, pki: TestPki, apiKey: string): Promise<TlsFront> {
  const session = http2.connect(`http://${upstream}`);
  session.on('error', () => undefined);
  const state = { refused: 0 };
  const server = http2.createSecureServer({
    key: readFileSync(pki.serverKey),
    cert: readFileSync(pki.serverCert),
    ca: readFileSync(pki.caCert),
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers.authorization !== `Bearer ${apiKey}`) {
      state.refused++;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'invalid API key' }, { endStream: true });
      return;
    }
    const forwarded: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (k !== ':authority' && k !== ':scheme' && k !== 'authorization') forwarded[k] = v;
    const req = session.request(forwarded);
    req.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.on('close', () => {
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
    });
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('trailers', (t) => (trailers = t));
    req.on('response', (h) => {
      const response = withoutPseudo(h, [':status']);
      if (h['grpc-status'] !== undefined) {
        // A trailers-only answer (an error): forwarded as one.
        stream.respond(response, { endStream: true });
        req.resume();
        return;
      }
      stream.respond(response, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(withoutPseudo(trailers, [])));
      req.pipe(stream);
    });
    stream.pipe(req);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    get refused() {
      return state.refused;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Long polls would hold the server open.
        setTimeout(resolve, 2000).unref();
      });
      session.close();
    },
  };
}

function withoutPseudo(h: http2.IncomingHttpHeaders, keep: string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if ((!k.startsWith(':') || keep.includes(k)) && v !== undefined) out[k] = v;
  return out;
}
