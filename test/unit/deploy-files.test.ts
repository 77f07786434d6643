// The worker image (Dockerfile, .dockerignore) and the Kubernetes example (deploy/kubernetes/),
// checked without a container engine (CI has none, so the image is never built there): every
// YAML document parses and reads the same as YAML 1.1 (Kubernetes) and 1.2; the Deployment runs
// `dbferry worker` with options client/cli.ts defines (read from its source text, so the test
// follows the CLI) and only documented environment variables; the Dockerfile's entry point is
// a file `bash scripts/build.sh` writes, the image runs as a non-root uid, and its Node.js major
// is one package.json's engines.node admits.
import { asyncContextFrames } from '../../worker/async-context';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import semver from 'semver';
import { parseAllDocuments } from 'yaml';

const repoRoot = resolve(__dirname, '../..');
const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

/**
 * The environment a worker container may be given: the Temporal CLI's connection variables
 * (as the SDK's envconfig reads them), dbferry's own, and the URLs the example plans reference.
 */
const DOCUMENTED_ENV = new Set([
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_PROFILE',
  'TEMPORAL_CONFIG_FILE',
  'DBFERRY_TASK_QUEUE',
  'DBFERRY_METRICS_PORT',
  'DBFERRY_LOG_FORMAT',
  'DBFERRY_LOG_LEVEL',
  'DBFERRY_DUMP_DIR',
  'DBFERRY_PG_BIN',
  'SOURCE_URL',
  'TARGET_URL',
]);

// ---------------------------------------------------------------------------------------------
// YAML

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObj = (v: unknown): Obj => (isObj(v) ? v : {});
const asArr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function yamlFiles(dir: string): string[] {
  return readdirSync(join(repoRoot, dir)).flatMap((name) => {
    const path = posix.join(dir, name);
    if (statSync(join(repoRoot, path)).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

const YAML_FILES = yamlFiles('deploy/kubernetes');

interface Doc {
  file: string;
  index: number;
  value: Obj;
}

/** The non-empty documents of a file, parsed as YAML 1.1 (as kubectl reads them). */
function documents(file: string): Doc[] {
  const text = read(file);
  const as11 = parseAllDocuments(text, { version: '1.1' });
  const as12 = parseAllDocuments(text, { version: '1.2' });
  if (!Array.isArray(as11) || !Array.isArray(as12)) throw new Error(`${file}: not a YAML stream`);
  const docs: Doc[] = [];
  as11.forEach((d, index) => {
    const problems = [...d.errors, ...d.warnings].map((e) => e.message);
    if (problems.length) throw new Error(`${file}, document ${index + 1}: ${problems.join('; ')}`);
    const value: unknown = d.toJS();
    // A scalar that YAML 1.1 and 1.2 read differently (0440, yes, on, 1:30) means one thing to kubectl, another to most tools.
    if (!isDeepStrictEqual(as12[index]?.toJS(), value)) throw new Error(`${file}, document ${index + 1}: YAML 1.1 and 1.2 read it differently (quote the ambiguous scalars)`);
    if (value === null || value === undefined) return; // comments only (before the first ---)
    if (!isObj(value)) throw new Error(`${file}, document ${index + 1}: a mapping expected`);
    docs.push({ file, index, value });
  });
  return docs;
}

const isPatch = (file: string) => file.includes('/patches/');

interface Container {
  name: string;
  args?: unknown[];
  env?: { name: string; value?: string; valueFrom?: Obj }[];
  ports?: { name?: string; containerPort?: number }[];
  readinessProbe?: Obj;
  livenessProbe?: Obj;
  startupProbe?: Obj;
  resources?: { requests?: Obj; limits?: Obj };
  securityContext?: Obj;
  volumeMounts?: { name: string; mountPath: string }[];
}

/** The containers of a Deployment, or of a patch of one (spec.template.spec.containers). */
function podSpec(doc: Obj): Obj {
  return asObj(asObj(asObj(doc.spec).template).spec);
}
function containers(doc: Obj): Container[] {
  return asArr(podSpec(doc).containers) as Container[];
}

// ---------------------------------------------------------------------------------------------
// client/cli.ts: the options `dbferry worker` accepts (its own, and the program's global ones)

/** The long flags of every .option / .requiredOption / new Option in a piece of commander code. */
function longFlags(code: string): Set<string> {
  const flags = new Set<string>();
  for (const m of code.matchAll(/(?:\.option|\.requiredOption|new\s+Option)\(\s*(['"`])(.*?)\1/gs)) {
    for (const f of m[2]!.matchAll(/--[a-z][a-z0-9-]*/g)) flags.add(f[0]);
  }
  return flags;
}

function workerOptions(): { global: Set<string>; worker: Set<string> } {
  const cli = read('client/cli.ts');
  const firstCommand = cli.search(/\.command\(/);
  const start = cli.search(/\.command\(\s*['"`]worker['"`]\s*\)/);
  if (firstCommand < 0 || start < 0) throw new Error('client/cli.ts: no `worker` command found');
  const rest = cli.slice(start + 1);
  const next = rest.search(/\.command\(/);
  return { global: longFlags(cli.slice(0, firstCommand)), worker: longFlags(next < 0 ? rest : rest.slice(0, next)) };
}

/** `--flag value` / `--flag=value` pairs of an argument list (a flag followed by another flag has no value). */
function flagsOf(args: string[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(0, eq), a.slice(eq + 1));
    else out.set(a, args[i + 1] !== undefined && !args[i + 1]!.startsWith('-') ? args[++i] : undefined);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  cmd: string;
  args: string;
}
interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (!current && !line.trim())) continue; // comments (also inside a continuation), blank lines
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    current += line;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(current);
    if (!m) throw new Error(`Dockerfile: cannot read the instruction ${JSON.stringify(current)}`);
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim() });
    current = '';
  }
  return out;
}

function dockerStages(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of dockerInstructions(text)) {
    if (ins.cmd === 'FROM') {
      const [image, as, name] = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      stages.push({ image: image!, ...(as?.toUpperCase() === 'AS' ? { name } : {}), instructions: [] });
    } else if (stages.length) stages[stages.length - 1]!.instructions.push(ins);
    else if (ins.cmd !== 'ARG') throw new Error(`Dockerfile: ${ins.cmd} before the first FROM`);
  }
  return stages;
}

const all = (s: Stage, cmd: string) => s.instructions.filter((i) => i.cmd === cmd);
const last = (s: Stage, cmd: string) => all(s, cmd).at(-1);

/** A COPY's sources and destination, resolved against the WORKDIR in effect at that point. */
interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function copies(s: Stage): Copy[] {
  let workdir = '/';
  const out: Copy[] = [];
  for (const ins of s.instructions) {
    if (ins.cmd === 'WORKDIR') workdir = posix.resolve(workdir, ins.args);
    if (ins.cmd !== 'COPY' && ins.cmd !== 'ADD') continue;
    const words = ins.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    const dest = paths.pop()!;
    // `COPY a ./a` copies into dest as it is named; a dest ending in / takes the source's base name
    const target = posix.resolve(workdir, dest);
    out.push({ ...(from ? { from } : {}), sources: paths, dest: dest.endsWith('/') && paths.length === 1 ? posix.join(target, posix.basename(paths[0]!)) : target });
  }
  return out;
}
const workdirOf = (s: Stage) => all(s, 'WORKDIR').reduce((w, i) => posix.resolve(w, i.args), '/');

const dockerfile = read('Dockerfile');
const stages = dockerStages(dockerfile);
const runtime = stages.at(-1)!;
const build = stages.find((s) => s.name === 'build');

/**
 * The repository file (after `bash scripts/build.sh`) that ends up at `imagePath` in the final
 * image: through a COPY --from=build, whose build-stage path is relative to that stage's
 * WORKDIR, where the repository is copied and built.
 */
function repoFileFor(imagePath: string): string | undefined {
  for (const c of copies(runtime).reverse()) {
    if (c.sources.length !== 1 || (imagePath !== c.dest && !imagePath.startsWith(c.dest + '/'))) continue;
    const stage = c.from ? stages.find((s) => s.name === c.from) : undefined;
    const source = posix.resolve(stage ? workdirOf(stage) : '/', c.sources[0]!) + imagePath.slice(c.dest.length);
    return stage ? posix.relative(workdirOf(stage), source) : posix.normalize(c.sources[0]! + imagePath.slice(c.dest.length));
  }
  return undefined;
}

/** .dockerignore as Docker applies it: the last pattern matching a path (or one of its parents) wins. */
function dockerIgnored(path: string): boolean {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const toRegex = (p: string) =>
    new RegExp(
      '^' +
        p
          .replace(/^\/+|\/+$/g, '')
          .split(/(\*\*\/|\*\*|\*|\?)/)
          .map((part) => ({ '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
          .join('') +
        '$',
    );
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const re = toRegex(negate ? p.slice(1) : p);
    if (prefixes.some((x) => re.test(x))) ignored = !negate;
  }
  return ignored;
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(repoRoot, dir)).flatMap((name) => {
    const path = posix.join(dir, name);
    return statSync(join(repoRoot, path)).isDirectory() ? filesUnder(path) : [path];
  });
}

// ---------------------------------------------------------------------------------------------

describe('deploy/kubernetes', () => {
  let docs: Doc[] = [];
  let manifests: Doc[] = [];
  let deployments: Doc[] = [];
  let worker: Container;
  beforeAll(() => {
    docs = YAML_FILES.flatMap(documents);
    manifests = docs.filter((d) => !isPatch(d.file));
    deployments = manifests.filter((d) => d.value.kind === 'Deployment');
    worker = deployments.map((d) => containers(d.value).find((c) => c.name === 'worker')).find((c) => c !== undefined)!;
  });

  test('every YAML document parses; manifests are namespace-agnostic Kubernetes objects', () => {
    expect(YAML_FILES).toContain('deploy/kubernetes/worker.yaml');
    for (const d of manifests) {
      const where = `${d.file}, document ${d.index + 1}`;
      expect({ where, apiVersion: typeof d.value.apiVersion, kind: typeof d.value.kind, name: typeof asObj(d.value.metadata).name }).toEqual({
        where,
        apiVersion: 'string',
        kind: 'string',
        name: 'string',
      });
      expect({ where, namespace: asObj(d.value.metadata).namespace }).toEqual({ where, namespace: undefined });
    }
    // A patch names the container it changes, as strategic merge patches do.
    for (const d of docs.filter((x) => isPatch(x.file))) expect(containers(d.value).map((c) => c.name)).toEqual(['worker']);
    expect(deployments).toHaveLength(1);
    expect(worker).toBeDefined();
  });

  test('the worker runs `dbferry worker` with options client/cli.ts defines', () => {
    const args = asArr(worker.args).map(String);
    expect(args[0]).toBe('worker');
    const { global, worker: own } = workerOptions();
    const flags = flagsOf(args.slice(1));
    // The example relies on these two; the list of what exists is read from the CLI's source.
    expect([...flags.keys()]).toEqual(expect.arrayContaining(['--metrics-port', '--log-format']));
    const unknown = [...flags.keys()].filter((f) => !own.has(f) && !global.has(f));
    expect({ unknown, worker: [...own].sort(), global: [...global].sort() }).toEqual({ unknown: [], worker: [...own].sort(), global: [...global].sort() });
    expect(['json', 'text']).toContain(flags.get('--log-format'));
  });

  test('only documented environment variables, secrets from the Secret the example defines', () => {
    const secrets = new Map(manifests.filter((d) => d.value.kind === 'Secret').map((d) => [asObj(d.value.metadata).name as string, d.value]));
    const names: string[] = [];
    for (const d of docs) {
      for (const c of containers(d.value)) {
        expect(asArr(asObj(c).envFrom)).toEqual([]); // every variable is named, so it can be checked here
        for (const e of c.env ?? []) {
          names.push(e.name);
          const ref = asObj(asObj(e.valueFrom).secretKeyRef);
          if (ref.name === undefined || !secrets.has(ref.name as string)) continue;
          const secret = secrets.get(ref.name as string)!;
          expect({ env: e.name, key: ref.key, inSecret: Object.keys({ ...asObj(secret.stringData), ...asObj(secret.data) }).includes(ref.key as string) }).toEqual({
            env: e.name,
            key: ref.key,
            inSecret: true,
          });
        }
      }
    }
    expect(names.filter((n) => !DOCUMENTED_ENV.has(n))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_API_KEY', 'SOURCE_URL', 'TARGET_URL']));
    expect(names).toEqual(expect.arrayContaining(['TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH'])); // the mTLS patch
    // The Secret holds placeholders only.
    for (const s of secrets.values()) {
      expect(s.data).toBeUndefined();
      for (const v of Object.values(asObj(s.stringData))) expect(String(v)).toMatch(/CHANGE-ME/);
    }
  });

  test('metrics port, probes, shutdown and resources fit the worker', () => {
    const port = Number(flagsOf(asArr(worker.args).map(String)).get('--metrics-port'));
    expect(worker.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: port })]);
    const deployment = deployments[0]!.value;
    expect(asObj(deployment.spec).replicas).toBe(2);
    const annotations = asObj(asObj(asObj(asObj(deployment.spec).template).metadata).annotations);
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    // The worker serves no health endpoint: the probes read the metrics.
    expect(worker.readinessProbe).toBeDefined();
    expect(worker.livenessProbe).toBeDefined();
    for (const probe of [worker.readinessProbe, worker.livenessProbe, worker.startupProbe].filter(Boolean)) expect(asObj(probe).httpGet).toEqual({ path: '/metrics', port: 'metrics' });
    for (const d of manifests.filter((x) => x.value.kind === 'PodMonitor')) {
      expect(asArr(asObj(d.value.spec).podMetricsEndpoints)).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    }

    // Kubernetes must wait longer than the worker's own forced shutdown (worker/worker.ts).
    const seconds = (v: string) => {
      const m = /^(\d+)(ms|s|m)$/.exec(v);
      if (!m) throw new Error(`a duration expected, got ${v}`);
      return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
    };
    const workerTs = read('worker/worker.ts');
    const force = /shutdownForceTime:\s*['"`]([^'"`]+)['"`]/.exec(workerTs)?.[1];
    const grace = /shutdownGraceTime:\s*['"`]([^'"`]+)['"`]/.exec(workerTs)?.[1];
    expect({ force, grace }).toEqual({ force: expect.any(String), grace: expect.any(String) });
    expect(podSpec(deployment).terminationGracePeriodSeconds).toBeGreaterThan(seconds(force!) + seconds(grace!));

    expect(worker.resources?.limits?.memory).toEqual(expect.any(String));
    expect(worker.resources?.requests?.memory).toEqual(expect.any(String));
  });

  test('the pod runs as the image user, non-root, read-only, without privileges', () => {
    const spec = podSpec(deployments[0]!.value);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: imageUid() });
    expect(worker.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const tmp = (worker.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
    expect(tmp).toBeDefined();
    const volume = asArr(spec.volumes).map(asObj).find((v) => v.name === tmp!.name);
    expect(volume).toMatchObject({ emptyDir: expect.any(Object) });
  });
});

/** The numeric uid the final stage runs as. */
function imageUid(): number {
  const user = last(runtime, 'USER')?.args;
  if (!user) throw new Error('Dockerfile: the final stage has no USER (it would run as root)');
  return Number(user.split(':')[0]);
}

describe('Dockerfile', () => {
  test('multi-stage: the build stage compiles what tsconfig.build.json includes, with the locked packages', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(build).toBeDefined();
    const context = copies(build!).filter((c) => !c.from);
    const copied = new Set(context.flatMap((c) => c.sources.map((s) => posix.normalize(s).replace(/\/$/, ''))));
    const include = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include;
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', ...include]) expect({ f, copied: copied.has(f) }).toEqual({ f, copied: true });
    const runs = all(build!, 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/\bnpm ci\b/);
    expect(runs).toMatch(/\bbash scripts\/build\.sh\b/);
    expect(runs).toMatch(/\bnpm (prune|ci) [^\n]*--omit=dev\b/);
  });

  test('.dockerignore keeps packages, builds, history and test data out, and the build inputs in', () => {
    for (const p of ['node_modules', 'node_modules/yaml/package.json', 'activities/node_modules/x', 'dist', 'dist/client/cli.js', '.git', '.git/HEAD', 'test/fixtures/x', 'test-artifacts/x', '.dbferry-demo/x', 'bench/results/x', '.env']) {
      expect({ p, ignored: dockerIgnored(p) }).toEqual({ p, ignored: true });
    }
    const include = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include;
    const inputs = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', ...include.flatMap(filesUnder)];
    expect(inputs.filter(dockerIgnored)).toEqual([]);
  });

  test('the entry point is the compiled CLI that `bash scripts/build.sh` writes, with what it loads', () => {
    const entrypoint = JSON.parse(last(runtime, 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint[0]).toBe('node');
    const script = entrypoint[1]!;
    const file = repoFileFor(script);
    expect({ script, file }).toEqual({ script, file: 'dist/client/cli.js' });
    expect(existsSync(join(repoRoot, file!))).toBe(true);
    // bin/dbferry runs the same file.
    expect(read('bin/dbferry')).toContain(`require('../${file}')`);
    // The CLI reads ../../package.json (its version); the worker the prebuilt workflow bundle beside dist/worker/.
    expect(read('client/cli.ts')).toContain("require('../../package.json')");
    expect(repoFileFor(posix.join(posix.dirname(script), '../../package.json'))).toBe('package.json');
    expect(read('worker/worker.ts')).toContain("join(__dirname, '..', 'workflow-bundle.js')");
    const bundle = repoFileFor(posix.join(posix.dirname(script), '..', 'workflow-bundle.js'));
    expect(bundle).toBe('dist/workflow-bundle.js');
    expect(existsSync(join(repoRoot, bundle!))).toBe(true);
    expect(repoFileFor(posix.join(posix.dirname(script), '../../node_modules/@temporalio/worker/package.json'))).toBe('node_modules/@temporalio/worker/package.json');
    expect(JSON.parse(last(runtime, 'CMD')!.args)).toEqual(['worker']);
  });

  test('the runtime stage: non-root uid, metrics port, production, pg_dump from the PGDG repository, labels', () => {
    const user = last(runtime, 'USER')!.args;
    expect(user).toMatch(/^\d+(:\d+)?$/); // numeric, so that runAsNonRoot can verify it
    expect(imageUid()).toBe(10001);
    expect(all(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toContain('9464');
    expect(all(runtime, 'ENV').map((i) => i.args).join(' ')).toMatch(/(^|\s)NODE_ENV=production(\s|$)/);
    const runs = all(runtime, 'RUN').map((i) => i.args).join('\n');
    expect(all(runtime, 'ARG').map((i) => i.args)).toEqual(expect.arrayContaining([expect.stringMatching(/^PG_MAJOR=\d+$/)]));
    expect(runs).toContain('apt.postgresql.org');
    expect(runs).toContain('postgresql-client-${PG_MAJOR}');
    expect(runs).toContain('ca-certificates');
    const labels = all(runtime, 'LABEL').map((i) => i.args).join(' ');
    for (const l of ['title', 'description', 'licenses', 'version', 'revision']) expect(labels).toContain(`org.opencontainers.image.${l}=`);
    expect(labels).toContain(`org.opencontainers.image.licenses="${(JSON.parse(read('package.json')) as { license: string }).license}"`);
  });

  test("the base image's Node.js major is one package.json's engines.node admits", () => {
    const majors = stages.map((s) => {
      const m = /^(?:docker\.io\/(?:library\/)?)?node:(\d+)[-.\w]*(?:@sha256:[0-9a-f]{64})?$/.exec(s.image);
      if (!m) throw new Error(`Dockerfile: FROM ${s.image} is not an official node image`);
      return Number(m[1]);
    });
    expect(new Set(majors).size).toBe(1); // built and run on the same Node.js
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(semver.validRange(engines)).not.toBeNull();
    expect({ engines, major: majors[0], admitted: semver.intersects(engines, `${majors[0]}.x`) }).toEqual({ engines, major: majors[0], admitted: true });
    expect(majors[0]! % 2).toBe(0); // an LTS line
    // The runtime's Node.js keeps async context in frames (CDC pays for async hooks on every promise).
    const env = all(runtime, 'ENV').map((i) => i.args).join(' ');
    const nodeOptions = /(?:^|\s)NODE_OPTIONS=("[^"]*"|\S+)/.exec(env)?.[1]?.replace(/"/g, '') ?? '';
    expect({ major: majors[0], frames: asyncContextFrames(`v${majors[0]}.0.0`, nodeOptions.split(/\s+/)) }).toEqual({ major: majors[0], frames: true });
  });
});
