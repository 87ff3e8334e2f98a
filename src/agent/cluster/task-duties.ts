import type { StateMachine } from '../../state/state-machine.ts'
import { planTaskTransitions, type TaskTimeCommand } from '../../state/task-planner.ts'

/**
 * The leader's time-driven task duties, for the housekeeping round (`leader-duties.ts`): what the pure planner
 * (`state/task-planner.ts`) says is due on this leader's monotonic clock, each with the key under which at
 * most one proposal of it is in flight (a duty still due on the next tick while its entry travels is not
 * proposed twice; proposed again after a lost answer, it is harmless: applying checks the task's state).
 *
 * `takeover` is when this node became leader: its monotonic clock then, and the state time it had applied.
 * `timeouts`: the attempts its `AttemptTimeoutClock` timed out (absent: timed from their start times).
 */
export function dueTaskDuties(
  state: Pick<StateMachine, 'taskPlanView'>,
  takeover: { local: number; stateTime: number },
  monotonicNow: number,
  timeouts?: readonly { taskId: string; attempt: number }[],
): { key: string; command: TaskTimeCommand }[] {
  const commands = planTaskTransitions({
    state: state.taskPlanView(),
    monotonicNow,
    takeover: { monotonic: takeover.local, stateTime: takeover.stateTime },
    ...(timeouts === undefined ? {} : { timeouts }),
  })
  return commands.map(command => ({ key: dutyKey(command), command }))
}

/** One key per duty: the same task's timeout of another attempt, or another slot, is another duty. */
export function dutyKey(command: TaskTimeCommand): string {
  switch (command.type) {
    case 'timeoutTask':
      return `t:${command.taskId}:${command.attempt}`
    case 'retryDue':
      return `r:${command.taskId}`
    case 'expireTask':
      return `e:${command.taskId}`
    case 'releaseTask':
      return `a:${command.taskId}`
    case 'createOccurrence':
      return `o:${command.scheduleId}:${command.slot}`
    case 'forgetTasks':
      // One forget batch in flight at a time: the next tick plans what is still kept.
      return 'f:'
  }
}
