// What the bench reads from outside the servers: CPU time and memory from /proc, load from
// autocannon, and the pinning of processes to cores with taskset (Linux).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import autocannon from 'autocannon'

export const CORES = os.availableParallelism() // before any pinning: it counts this process's cores
export const ALL_CORES = `0-${CORES - 1}`

/** Pins a process (all its threads) to the cores given; false without taskset or with one core. */
export function pin(pid: number, cores: string): boolean {
  if (CORES < 2) return false
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cores, String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** A process's CPU time so far (user and system, all threads) in microseconds; 0 once it is gone. */
export function cpuMicros(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
  } catch {
    return 0
  }
}

/** VmRSS and VmHWM (peak) in MB. */
export function memoryMB(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1])
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

/** Resets a process's peak RSS to its current RSS (Linux 4.0+), so a later peak is that of what followed. */
export function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5')
}

export function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => autocannon({ connections: 2, duration: 2, ...opts }, (err, res) => (err ? reject(err) : resolve(res))))
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
