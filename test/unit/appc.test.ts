import { describe, expect, it } from 'vitest'
import { acIdentifierProblem, appcArch, toAcName } from '../../src/plan/appc.js'
import { APPC_VALID_AC_NAME } from '../helpers/ac-name.js'

describe('appc naming rules', () => {
  it('accepts the image names of the original README', () => {
    expect(acIdentifierProblem('go1.5-etcd-v2.1.2')).toBeUndefined()
    expect(acIdentifierProblem('bbpython35')).toBeUndefined()
    expect(acIdentifierProblem('example.com/etcd')).toBeUndefined()
  })

  it('refuses names outside the AC Identifier rule, saying the rule', () => {
    expect(acIdentifierProblem('')).toBe('ACIdentifier cannot be empty')
    expect(acIdentifierProblem('Etcd')).toMatch(/lower case alphanumeric characters plus "-._~\/"/)
    expect(acIdentifierProblem('my+app')).toMatch(/only lower case/)
    expect(acIdentifierProblem('my_app~1')).toBeUndefined()
    expect(acIdentifierProblem('-etcd')).toMatch(/start and end/)
    expect(acIdentifierProblem('etcd/')).toMatch(/start and end/)
  })

  it('makes a valid AC Name of any store path name', () => {
    for (const raw of ['gk6nh-etcd-3.4.23', 'abc-gtk+-3.24', 'xyz-Foo_Bar', '--weird..', '+++']) {
      expect(toAcName(raw), raw).toMatch(APPC_VALID_AC_NAME)
    }
    expect(toAcName('abc-gtk+-3.24')).toBe('abc-gtk-3-24')
    expect(toAcName('xyz-Foo_Bar')).toBe('xyz-foo-bar')
  })

  it('spells host architectures the appc way', () => {
    expect(appcArch('x86_64')).toBe('amd64')
    expect(appcArch('i686')).toBe('i386')
    expect(appcArch('aarch64')).toBe('aarch64')
  })
})
