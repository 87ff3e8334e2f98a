/** The replicated coordination state machine: commands, their codec, and the state they build. */

export {
  type DecodeResult,
  decodeEnvelope,
  encodeCommand,
  encodeEnvelope,
  validateEnvelope,
} from './codec.ts'
export type {
  CampaignCommand,
  CancelTaskCommand,
  ClaimTaskCommand,
  CloseSessionCommand,
  Command,
  CommandType,
  CompleteTaskCommand,
  CreateOccurrenceCommand,
  DeleteCommand,
  DeregisterAgentCommand,
  Envelope,
  ExpireSessionCommand,
  ExpireTaskCommand,
  FailTaskCommand,
  ForgetTasksCommand,
  KeepAliveCommand,
  LockAcquireCommand,
  LockCancelCommand,
  LockExpireCommand,
  LockExtendCommand,
  LockReleaseCommand,
  OpenSessionAndRegisterCommand,
  OpenSessionCommand,
  PauseTasksCommand,
  ProclaimCommand,
  PutCommand,
  PutEphemeralCommand,
  RegisterAgentCommand,
  ReleaseTaskCommand,
  ResignCommand,
  ResumeTasksCommand,
  RetryDueCommand,
  SemaphoreAcquireCommand,
  SetClusterVersionCommand,
  SetMaxFinishedTasksCommand,
  StealTaskCommand,
  SubmitTaskCommand,
  TaskProgressCommand,
  TimeoutTaskCommand,
  TxnCommand,
  TxnCompareSpec,
  TxnOpSpec,
  UpdateAgentCommand,
} from './commands.ts'
export type { ApplyContext } from './context.ts'
export type { Candidate, ElectionInfo } from './elections.ts'
export type {
  AgentChangedEvent,
  ElectionChangedEvent,
  ElectionLeader,
  KvEvent,
  LockGrantedEvent,
  LockReleasedEvent,
  SessionClosedEvent,
  SessionExpiredEvent,
  StateEvent,
  TaskAssignedEvent,
  TaskAttemptEndedEvent,
  TaskChange,
  TaskChangeEvent,
  TaskChangeType,
  TaskCompletedEvent,
  TaskDeadEvent,
  TaskExpiredEvent,
  TaskFailedEvent,
  TaskRetryEvent,
  TaskStartedEvent,
  TaskStolenEvent,
  TaskUnassignedEvent,
} from './events.ts'
export type { HistoryResult } from './history.ts'
export {
  convertJson,
  copyJson,
  isJsonValue,
  type JsonValue,
  jsonEqual,
  MAX_JSON_DEPTH,
  toJsonValue,
} from './json.ts'
export { compareKeys, isKey, MAX_KEY_LENGTH } from './keys.ts'
export type { KeyValue, KvEntryInfo, KvListPage } from './kv.ts'
export type { LockHolder, LockInfo, LockWaiter, SemaphoreInfo } from './locks.ts'
export type { RegisteredAgent } from './members.ts'
export type { CommandResult, ErrorCode, ErrorResult } from './results.ts'
export type { SessionEndListener, SessionInfo } from './sessions.ts'
export {
  type ApplyInput,
  type ApplyOutput,
  type DueExpiries,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  StateMachine,
  type StateMachineOptions,
} from './state-machine.ts'
export type { TaskHistoryResult } from './task-history.ts'
export {
  leaderStateTime,
  planTaskTransitions,
  retentionOf,
  type TaskPlanInput,
  type TaskTimeCommand,
} from './task-planner.ts'
export { latestDueSlot, nextSlot, repeatError, taskOptionsError } from './task-repeat.ts'
export { isMaxFinishedTasks, MAX_FINISHED_TASKS_LIMIT, maxFinishedTasksError } from './task-retention.ts'
export {
  type BackoffSpec,
  FINISHED_STATES,
  isTaskState,
  MAX_CONCURRENCY,
  MAX_LIST_LENGTH,
  MAX_RETRIES,
  MIN_REPEAT_EVERY_MS,
  type RepeatSpec,
  type RetentionSpec,
  TASK_STATES,
  type TaskConstraintsSpec,
  type TaskSpec,
  type TaskSpecLimits,
  type TaskState,
  taskSpecProblem,
} from './task-spec.ts'
export type {
  AgentLoad,
  DueTaskActions,
  RepeatInfo,
  TaskInfo,
  TaskPage,
  TaskPlanView,
  TaskQuery,
} from './tasks.ts'
export { MAX_TXN_OPS, txnError } from './txn.ts'
export {
  BASE_COMMAND_SET_VERSION,
  COMMAND_SET_VERSION,
  commandVersion,
  isCommandSetVersion,
  JOIN_IN_ONE_ENTRY_VERSION,
} from './versions.ts'
