/**
 * The CLI's SPIFFE identity: `--svid`, `--svid-key` and `--trust-bundle` (files), all three or none. A
 * client command proves it to the agent it dials (whose policy then decides what it may do) and checks the
 * agent's own SVID against the bundle; `conclave agent` passes them on as the agent's `security` option.
 */

import { readFileSync } from 'node:fs'
import { InvalidArgumentError } from '../errors.ts'
import { SvidError } from '../security/errors.ts'
import { AuthorizationPolicy, type PolicyRule } from '../security/policy.ts'
import {
  loadSvid,
  parseTrustBundle,
  type TrustBundleSet,
  verifySvid,
  type X509Svid,
} from '../security/svid.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'

/** The identity options, and the environment variable each falls back to in client commands. */
const IDENTITY_FLAGS = [
  { name: 'svid', env: 'CONCLAVE_SVID', placeholder: '<cert.pem>' },
  { name: 'svid-key', env: 'CONCLAVE_SVID_KEY', placeholder: '<key.pem>' },
  { name: 'trust-bundle', env: 'CONCLAVE_TRUST_BUNDLE', placeholder: '<bundle.pem>' },
] as const

const CLIENT_DESCRIPTIONS = [
  "this client's X509-SVID (certificate chain) for a cluster with SPIFFE identities (default: env CONCLAVE_SVID)",
  "the SVID's private key (default: env CONCLAVE_SVID_KEY)",
  "the trust domain's CA certificates, to check the agent's SVID (default: env CONCLAVE_TRUST_BUNDLE)",
]

const AGENT_DESCRIPTIONS = [
  "this agent's X509-SVID (certificate chain): turns SPIFFE identities on",
  "the SVID's private key",
  "the trust domain's CA certificates (PEM, or a SPIFFE bundle in JSON)",
]

/** `--svid`, `--svid-key`, `--trust-bundle`, as described for a client command or for `conclave agent`. */
export function identityOptions(forWhom: 'client' | 'agent'): OptionSpec[] {
  const descriptions = forWhom === 'client' ? CLIENT_DESCRIPTIONS : AGENT_DESCRIPTIONS
  return IDENTITY_FLAGS.map((flag, index) => ({
    name: flag.name,
    kind: 'string' as const,
    placeholder: flag.placeholder,
    description: descriptions[index],
  }))
}

/** The contents of the three identity files. */
export interface IdentityFiles {
  certificate: Uint8Array
  key: Uint8Array
  trustBundle: Uint8Array
  /** Where they were read from (`conclave agent` re-reads them to follow renewals). */
  paths: { certificate: string; key: string; trustBundle: string }
}

/**
 * Reads the files named by the identity options (and, with `env`, the environment variables): undefined
 * when none is given. A `UsageError` when only some are; an `InvalidArgumentError` naming the option when
 * a file cannot be read.
 */
export function readIdentityFiles(args: ParsedArgs, env: boolean): IdentityFiles | undefined {
  const paths = IDENTITY_FLAGS.map(flag => {
    const given = args.options[flag.name] as string | undefined
    return given ?? (env ? process.env[flag.env] || undefined : undefined)
  })
  if (paths.every(path => path === undefined)) return undefined
  const missing = IDENTITY_FLAGS.filter((_, index) => paths[index] === undefined)
  if (missing.length > 0) {
    const names = missing.map(flag => `--${flag.name}${env ? ` (or ${flag.env})` : ''}`).join(' and ')
    throw new UsageError(`--svid, --svid-key and --trust-bundle go together: ${names} missing`)
  }
  const [certificate, key, trustBundle] = paths.map(
    (path, index) => new Uint8Array(readOptionFile(IDENTITY_FLAGS[index].name, path!)),
  )
  return {
    certificate,
    key,
    trustBundle,
    paths: { certificate: paths[0]!, key: paths[1]!, trustBundle: paths[2]! },
  }
}

/** A loaded identity: the SVID, and the bundle of its trust domain (a client checks agents with it). */
export interface LoadedIdentity {
  svid: X509Svid
  bundles: TrustBundleSet
}

/**
 * Loads and checks `files` as `resolveSecurity` does an agent's: the key must match the SVID, and the SVID
 * must validate against the bundle at `now`, so a wrong file fails here with its option's name rather than
 * as a refusal from the agent.
 */
export function loadIdentity(files: IdentityFiles, now: number = Date.now()): LoadedIdentity {
  const svid = check('--svid/--svid-key', () => loadSvid(files.certificate, files.key))
  const bundle = check('--trust-bundle', () => parseTrustBundle(files.trustBundle))
  const bundles: TrustBundleSet = new Map([[svid.spiffeId.trustDomain, bundle]])
  check('--svid (checked against --trust-bundle)', () => verifySvid(svid.chain, bundles, now))
  return { svid, bundles }
}

function check<T>(what: string, load: () => T): T {
  try {
    return load()
  } catch (err) {
    if (err instanceof SvidError) {
      throw new InvalidArgumentError(`${what}: ${err.message} (${err.reason})`, { cause: err })
    }
    throw err
  }
}

/**
 * Reads and checks `conclave agent --policy`: a JSON file holding the rules `createAgent` takes as
 * `security.policy` (an array of `{ "ids": [...], "allow": [...] | "*" }`). A bad file is an
 * `InvalidArgumentError` naming the option, before the agent starts.
 */
export function readPolicyFile(path: string): PolicyRule[] {
  const text = readOptionFile('policy', path).toString('utf8')
  let rules: unknown
  try {
    rules = JSON.parse(text)
  } catch (err) {
    throw new InvalidArgumentError(`--policy: ${path} is not JSON (${(err as Error).message})`, {
      cause: err,
    })
  }
  try {
    new AuthorizationPolicy(rules as PolicyRule[])
  } catch (err) {
    throw new InvalidArgumentError(`--policy: ${(err as Error).message}`, { cause: err })
  }
  return rules as PolicyRule[]
}

/** The file an option names; an `InvalidArgumentError` naming the option if it cannot be read. */
function readOptionFile(option: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new InvalidArgumentError(`--${option}: could not read ${path} (${why})`, { cause: err })
  }
}
