/** Test-support checkers: linearizability of client histories, and the models they check against. */

export {
  describeKvOperation,
  type KvInput,
  type KvOperation,
  type KvOutput,
  type KvState,
  kvModel,
} from './kv-model.ts'
export {
  type CheckOptions,
  type CheckOutcome,
  type CheckResult,
  checkOperations,
  formatTime,
  type Model,
  type Operation,
  type SearchStrategy,
} from './linearizability.ts'
export {
  describeTxnOperation,
  type TxnCompare,
  type TxnEntry,
  type TxnInput,
  type TxnOperation,
  type TxnOutput,
  type TxnState,
  type TxnValue,
  type TxnWrite,
  txnModel,
} from './txn-model.ts'
