/** The transaction model accepts what etcd's Txn allows and rejects what it does not. */

import { describe, expect, it } from 'vitest'
import {
  checkOperations,
  type TxnInput,
  type TxnOperation,
  type TxnOutput,
  txnModel,
} from '../../src/check/index.ts'

let clock = 0
function op(
  clientId: number,
  input: TxnInput,
  output: TxnOutput | undefined,
  call?: number,
  ret?: number,
): TxnOperation {
  const start = call ?? ++clock
  return { clientId, input, call: start, output, return: output === undefined ? Infinity : (ret ?? ++clock) }
}

const open: TxnInput = {
  op: 'txn',
  compare: [
    { key: 'x', target: 'exists', op: '==', value: false },
    { key: 'y', target: 'exists', op: '==', value: false },
  ],
  success: [
    { type: 'put', key: 'x', value: 100 },
    { type: 'put', key: 'y', value: 100 },
  ],
  failure: [],
}

function transfer(vx: number, vy: number, x: number, y: number): TxnInput {
  return {
    op: 'txn',
    compare: [
      { key: 'x', target: 'version', op: '==', value: vx },
      { key: 'y', target: 'version', op: '==', value: vy },
    ],
    success: [
      { type: 'put', key: 'x', value: x },
      { type: 'put', key: 'y', value: y },
    ],
    failure: [{ type: 'put', key: 'memo', value: 'failed' }],
  }
}

const read: TxnInput = { op: 'read', keys: ['x', 'y', 'memo'] }

describe('txnModel', () => {
  it('accepts transfers, a failed one taking its failure branch, and consistent reads', () => {
    const history = [
      op(1, open, { succeeded: true }),
      op(1, transfer(1, 1, 90, 110), { succeeded: true }),
      op(2, transfer(1, 1, 50, 150), { succeeded: false }),
      op(2, read, {
        entries: {
          x: { value: 90, version: 2 },
          y: { value: 110, version: 2 },
          memo: { value: 'failed', version: 1 },
        },
      }),
    ]
    expect(checkOperations(txnModel, history).result).toBe('ok')
  })

  it('accepts concurrent transfers in either order, and an unknown one that may have applied', () => {
    const t = ++clock
    const history = [
      op(1, open, { succeeded: true }),
      op(1, transfer(1, 1, 90, 110), { succeeded: false }, t, t + 10),
      op(2, transfer(1, 1, 80, 120), { succeeded: true }, t + 1, t + 9),
      op(3, { op: 'put', key: 'memo', value: 'm' }, undefined, t + 2),
      op(
        2,
        read,
        {
          entries: {
            x: { value: 80, version: 2 },
            y: { value: 120, version: 2 },
            memo: { value: 'failed', version: 1 },
          },
        },
        t + 11,
        t + 12,
      ),
    ]
    clock = t + 12
    expect(checkOperations(txnModel, history).result).toBe('ok')
  })

  it('rejects two transfers that both succeeded on the same versions (a lost update)', () => {
    const t = ++clock
    const history = [
      op(1, open, { succeeded: true }),
      op(1, transfer(1, 1, 90, 110), { succeeded: true }, t, t + 10),
      op(2, transfer(1, 1, 80, 120), { succeeded: true }, t + 1, t + 9),
    ]
    clock = t + 10
    expect(checkOperations(txnModel, history).result).toBe('illegal')
  })

  it('rejects a read that sees half of a transaction', () => {
    const history = [
      op(1, open, { succeeded: true }),
      op(1, transfer(1, 1, 90, 110), { succeeded: true }),
      op(2, read, { entries: { x: { value: 90, version: 2 }, y: { value: 100, version: 1 } } }),
    ]
    expect(checkOperations(txnModel, history).result).toBe('illegal')
  })

  it('rejects a version that a plain put did not raise, and a value compare that passed on an absent key', () => {
    const stale = [
      op(1, { op: 'put', key: 'x', value: 1 }, {}),
      op(1, { op: 'put', key: 'x', value: 2 }, {}),
      op(2, { op: 'read', keys: ['x'] }, { entries: { x: { value: 2, version: 1 } } }),
    ]
    expect(checkOperations(txnModel, stale).result).toBe('illegal')
    const absent = [
      op(1, { op: 'delete', key: 'x' }, {}),
      op(
        1,
        {
          op: 'txn',
          compare: [{ key: 'x', target: 'value', op: '!=', value: 5 }],
          success: [{ type: 'put', key: 'y', value: 1 }],
          failure: [],
        },
        { succeeded: true },
      ),
    ]
    expect(checkOperations(txnModel, absent).result).toBe('illegal')
  })
})
