import type { ClusterStatus } from '../agent/api/client-protocol.ts'
import type { ParsedArgs } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, withConnection } from './connection.ts'
import { formatTable, printJson, printLine } from './output.ts'

export const statusCommand: CliCommand = {
  spec: {
    name: 'status',
    summary: 'Show the cluster as one agent sees it: members, roles, leader, term, health.',
    positionals: [],
    options: CLIENT_OPTIONS,
  },
  async run(args: ParsedArgs): Promise<number> {
    const status = await withConnection(args, connection => connection.call('status', {}))
    if (args.options.json === true) printJson(status)
    else printLine(formatStatus(status))
    return 0
  },
}

export function formatStatus(status: ClusterStatus): string {
  const leader = status.members.find(member => member.id === status.leader)
  const leaderText =
    status.leader === '' ? 'no leader' : `leader ${leader?.name ?? status.leader} (${status.leader})`
  const lines = [
    `cluster ${status.healthy ? 'healthy' : 'UNHEALTHY'}: ${leaderText}, term ${status.term}, ` +
      `${status.memberCount} members, ${status.healthyCount} healthy` +
      (status.clusterVersion === undefined ? '' : `, command set v${status.clusterVersion}`),
    `answered by ${status.agent.name} (${status.agent.id})` +
      (status.supportedVersion === undefined ? '' : `, which supports up to v${status.supportedVersion}`),
    '',
  ]
  const rows = status.members
    .slice()
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(member => [
      member.name,
      member.id === status.leader ? 'leader' : member.role,
      member.status,
      member.load.toFixed(2),
      member.capabilities.join(',') || '-',
      member.id,
      member.addrs[0] ?? '-',
    ])
  lines.push(formatTable(['NAME', 'ROLE', 'STATUS', 'LOAD', 'CAPABILITIES', 'ID', 'ADDRESS'], rows))
  return lines.join('\n')
}
