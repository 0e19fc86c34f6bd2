"""The vector engine's step, compiled with Numba: one pass over everyone, then word of mouth.

:func:`step` moves every person through one step in a single pass over the state arrays,
branching on the stage each had at the start of the step (so the step stays synchronous: a
person's update reads only their own state and the contact counts of the start of the step). The
formulas are :mod:`cxsim.rules`' own functions, compiled on numbers here (``register_jitable``),
not copies. While it passes, it counts the end-of-step stocks and works out each person's voice
for the next step; afterwards the contact counts are updated from the few whose voice changed,
over the network's CSR ``indptr``/``indices`` (its ``data`` is not read).

Random numbers are drawn by NumPy in blocks and read here (a generator called from compiled code
costs several times more per number). ``uniform`` holds every person's one uniform of the step,
in person order, whatever their stage: it decides the stage's one common event (a prospect
buying, a customer leaving, a churned person returning), so a person's draw does not move when a
parameter or anyone else's fate moves (common random numbers). ``pool`` holds uniforms for
everything else, read in turn: the rare events (visits felt, new problems, outreach, reviews) are
drawn as gaps between successes (a geometric count per success, the same distribution as one coin
per person) and the rest one per case. When the pool runs low the step stops before a person and
returns where it stopped; the caller refills the pool and calls again from there.
Compilations are cached on disk (``cache=True``), so only the first run after installing pays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload, register_jitable

from cxsim import rules
from cxsim.engines.base import Channel, Stage


@overload(rules.most)
def _most(counts):
    """rules.most of one count, compiled: the count itself (NumPy's max of a number would
    allocate an array)."""
    if isinstance(counts, types.Integer):
        return lambda counts: counts
    return None


for _rule in (
    rules.sigmoid,
    rules.update_satisfaction,
    rules.likelihood_to_recommend,
    rules.walk_away_step,
    rules.baseline_hazard,
    rules.at_risk,
    rules.churn_chance,
    rules.damped,
    rules.adoption_chance,
    rules.review_stars,
):
    register_jitable(_rule)  # callable from the kernels below, as the same Python function

PROSPECT, ONBOARDING, ACTIVE, CHURNED = (int(s) for s in Stage)
ADS, REFERRAL, WIN_BACK = int(Channel.ADS), int(Channel.REFERRAL), int(Channel.WIN_BACK)
PROMOTER_MIN, DETRACTOR_MAX = float(rules.PROMOTER_MIN), float(rules.DETRACTOR_MAX)
CSAT_SATISFIED = rules.CSAT_SATISFIED
NEVER = 2**62  # a gap no population reaches: the event has no chance

# Flows counted by the step, in this order (the names of cxsim.engines.base.Tally).
FLOWS = (
    "new_ads",
    "new_referral",
    "new_win_back",
    "returned",
    "experiences_good",
    "experiences_bad",
    "problems_arising",
    "problems_detected",
    "problems_contacted",
    "problems_resolved",
    "outreach_contacts",
    "reviews_posted",
    "csat_respondents",
    "csat_satisfied",
)
(NEW_ADS, NEW_REFERRAL, NEW_WIN_BACK, RETURNED, GOOD, BAD, ARISING, DETECTED, CONTACTED, RESOLVED,
 OUTREACH, POSTED, RESPONDENTS, SATISFIED) = range(len(FLOWS))  # fmt: skip
# Stocks at the end of the step: people by stage (0-3), then these, then the voices heard next.
STOCKS = ("promoters", "detractors", "problems_open", "at_risk", "voice_promoters",
          "voice_detractors")  # fmt: skip
PROMOTERS, DETRACTORS, PROBLEMS_OPEN, AT_RISK, VOICE_PROMOTERS, VOICE_DETRACTORS = range(4, 10)
N_STOCKS = 4 + len(STOCKS)
SUMS = ("review_stars", "revenue", "satisfaction_sum")
STARS, REVENUE, SATISFACTION_SUM = range(3)
# Parameters of the step (float64 vector ``par``), in this order.
PARAMETERS = (
    "decay", "intercept", "slope", "relaxation", "gain", "loss", "elasticity", "problem_fade",
    "detection_delight", "support_contact", "first_contact_resolution", "recovery_delight",
    "ad_conversion", "review_multiplier", "onboarding_steps", "churned_steps", "win_back_wait",
    "win_back_rate", "baseline_cause", "aimed", "referral", "warning",
)  # fmt: skip
(DECAY, INTERCEPT, SLOPE, RELAXATION, GAIN, LOSS, ELASTICITY, FADE, DETECTION_DELIGHT, SUPPORT,
 FCR, RECOVERY_DELIGHT, AD_CONVERSION, REVIEW_MULTIPLIER, ONBOARDING_STEPS, CHURNED_STEPS,
 WIN_BACK_WAIT, WIN_BACK_RATE, BASELINE_CAUSE, AIMED, REFERRAL_MIXED,
 WARNING_MIXED) = range(len(PARAMETERS))  # fmt: skip


# Where a step stands between calls (int64 vector ``cursor``): the person to go on from, how many
# pool uniforms the last call read, leavers listed, the start of the changed voices listed.
NEXT, READ, LEFT, BACK = range(4)


@njit(cache=True)
def draws_per_person(touchpoints):
    """Most pool uniforms one person can need in a step (two per visit felt, four for a new
    problem, four for an open one, one each for outreach and a review), with room to spare."""
    return 2 * touchpoints + 16


def slots(touchpoints: int) -> dict[str, int]:
    """Positions of the rare events in the chance vector: a visit felt at each touchpoint by
    each of the first three stages (stage x touchpoints + touchpoint), then these."""
    first = 3 * touchpoints
    return {"problem_onboarding": first, "problem_active": first + 1, "outreach": first + 2,
            "review_bad": first + 3, "review_calm": first + 4, "count": first + 5}  # fmt: skip


@njit(cache=True, inline="always")
def _gap(u, log_q):
    """Failures before the next success of coins with chance p, log_q = log(1 - p), from one
    uniform u in [0, 1) (a geometric count, by inversion)."""
    if log_q == 0.0:
        return NEVER
    g = math.floor(math.log(1.0 - u) / log_q)  # log_q = -inf (p = 1): every coin succeeds
    return NEVER if g >= NEVER else int(g)


@njit(cache=True, inline="always")
def _voice(g, s, churned_at, t_next, churned_steps):
    """The voice in step t_next of a person of stage g and satisfaction s: 1 a promoter
    customer, 2 a detractor (a customer, or churned within the last ``churned_steps``), else 0."""
    if g in (ONBOARDING, ACTIVE):
        ltr = rules.likelihood_to_recommend(s)
        if ltr >= PROMOTER_MIN:
            return 1
        if ltr <= DETRACTOR_MAX:
            return 2
    elif (
        g == CHURNED
        and t_next - churned_at <= churned_steps
        and rules.likelihood_to_recommend(s) <= DETRACTOR_MAX
    ):
        return 2
    return 0


@njit(cache=True)
def _send(i, v, voice, heard, indptr, indices):
    """Add the change of person i's voice to v to the counts of each of their contacts."""
    dp = (v & 1) - (voice[i] & 1)
    dd = (v >> 1) - (voice[i] >> 1)
    voice[i] = v
    for k in range(indptr[i], indptr[i + 1]):
        heard[0, indices[k]] += dp
        heard[1, indices[k]] += dd


@njit(cache=True)
def listen(t_next, churned_steps, stage, satisfaction, churn_step, voice, heard, indptr, indices):
    """Every person's voice for step t_next, and the contact counts from scratch (at the start,
    or after a step that changed too many voices to list)."""
    heard[:] = 0
    for i in range(len(stage)):
        v = _voice(stage[i], np.float64(satisfaction[i]), churn_step[i], t_next, churned_steps)
        voice[i] = 0
        if len(indptr):
            _send(i, v, voice, heard, indptr, indices)
        voice[i] = v


@njit(cache=True)
def step(t, par, chance, bad, severity, cumulative, detection, referral_by_contacts,
         warning_by_contacts, uniform, pool, cursor, skip, stage, resting, satisfaction, theta,
         tolerance, arpu, reads_reviews, bad_count, problem, spell, acquired_step, channel,
         churn_step, cause, voice, heard, indptr, indices, listed, flows, stocks,
         sums):  # fmt: skip
    """One step of everyone from person ``cursor[NEXT]`` on (0: a new step). ``bad`` (3, T):
    chance of a bad visit per stage and touchpoint (``chance`` holds bad or good and the other
    rare events, see :func:`slots`); ``skip`` the gaps to each rare event's next success. Writes
    the flows, end-of-step stocks and sums; leavers' indices go first in ``listed``, in person
    order, ``cursor[LEFT]`` of them. Returns True when the step is done, False when the pool ran
    low (refill it and call again)."""
    n, T = len(stage), len(severity)
    slot = 3 * T
    log_q = np.log1p(-np.minimum(chance, 1.0))
    at = 0  # the next pool uniform
    first = cursor[NEXT]
    if first == 0:
        for k in range(len(chance)):
            skip[k] = _gap(pool[at], log_q[k])
            at += 1
        flows[:] = 0
        sums[:] = 0.0
        stocks[:] = 0
        cursor[LEFT] = 0
        cursor[BACK] = n  # people whose voice changed are listed from the end of ``listed``
    network = len(indptr) > 0
    left = cursor[LEFT]
    back = cursor[BACK]
    # Running totals kept in local variables (in registers, not written to memory per person).
    good_n, bad_n = flows[GOOD], flows[BAD]
    revenue, satisfaction_sum = sums[REVENUE], sums[SATISFACTION_SUM]
    promoters, detractors = stocks[PROMOTERS], stocks[DETRACTORS]
    problems_open, at_risk = stocks[PROBLEMS_OPEN], stocks[AT_RISK]
    voice_promoters, voice_detractors = stocks[VOICE_PROMOTERS], stocks[VOICE_DETRACTORS]
    # The touchpoints each stage can feel (the others need no count-down).
    felt_by = np.empty((3, T), np.int64)
    n_felt = np.zeros(3, np.int64)
    for g in range(3):
        for j in range(T):
            if chance[g * T + j] > 0.0:
                felt_by[g, n_felt[g]] = j
                n_felt[g] += 1
    room = len(pool) - draws_per_person(T)  # stop before a person who might run it dry
    onboarding_state = ONBOARDING if par[ONBOARDING_STEPS] > 0 else ACTIVE
    baseline_cause = int(par[BASELINE_CAUSE])
    stop = n
    for i in range(first, n):
        if at > room:
            stop = i
            break
        u = uniform[i]
        g = stage[i]
        if g == PROSPECT:
            spoiled = False  # a bad first impression loses the sale this step
            for a in range(n_felt[PROSPECT]):
                j = felt_by[PROSPECT, a]
                if skip[j] > 0:  # not the next success of this event: count down its gap
                    skip[j] -= 1
                else:
                    skip[j] = _gap(pool[at], log_q[j])
                    if pool[at + 1] * chance[j] < bad[0, j]:
                        bad_n += 1
                        spoiled = True
                    else:
                        good_n += 1
                    at += 2
            if network:
                referral = referral_by_contacts[heard[0, i]]
                factor = warning_by_contacts[heard[1, i]]
            else:
                referral, factor = par[REFERRAL_MIXED], par[WARNING_MIXED]
            if reads_reviews[i]:
                factor *= par[REVIEW_MULTIPLIER]
            referral = rules.damped(referral, factor)
            ad = rules.damped(par[AD_CONVERSION], factor)
            if not spoiled and u < rules.adoption_chance(ad, referral):
                if churn_step[i] >= 0:
                    channel[i] = WIN_BACK
                    spell[i] += 1
                    flows[NEW_WIN_BACK] += 1
                elif u < referral:
                    channel[i] = REFERRAL
                    flows[NEW_REFERRAL] += 1
                else:
                    channel[i] = ADS
                    flows[NEW_ADS] += 1
                stage[i] = onboarding_state
                acquired_step[i] = t
                churn_step[i] = -1
                cause[i] = -1
        elif g == CHURNED:
            if t - churn_step[i] > par[WIN_BACK_WAIT] and u < par[WIN_BACK_RATE]:
                stage[i] = PROSPECT
                satisfaction[i] = resting[i]
                bad_count[i] = 0.0
                flows[RETURNED] += 1
        else:
            # Step 1: visits felt, each bad with P(bad) / P(bad or good).
            good, n_bad, weight, last_bad = 0, 0, 0.0, -1
            for a in range(n_felt[g]):
                j = felt_by[g, a]
                k = g * T + j
                if skip[k] > 0:
                    skip[k] -= 1
                else:
                    skip[k] = _gap(pool[at], log_q[k])
                    if pool[at + 1] * chance[k] < bad[g, j]:
                        n_bad += 1
                        weight += severity[j]
                        last_bad = j
                    else:
                        good += 1
                    at += 2
            good_n += good
            bad_n += n_bad
            # Step 2: problems. An open one may fade; else a new one may arise, be detected
            # (and maybe delight), or be felt; a support contact may resolve an open one.
            p = problem[i]
            older = felt = contacted = resolved = False
            if p >= 0:
                at += 1
                if pool[at - 1] < par[FADE]:
                    p = -1
                else:
                    older = True
            elif skip[slot + g - ONBOARDING] > 0:
                skip[slot + g - ONBOARDING] -= 1
            else:
                k = slot + g - ONBOARDING
                skip[k] = _gap(pool[at], log_q[k])
                flows[ARISING] += 1
                where = 0
                for j in range(T):
                    where += pool[at + 1] >= cumulative[g, j]
                at += 3
                if pool[at - 1] < detection[where]:
                    flows[DETECTED] += 1
                    at += 1
                    if pool[at - 1] < par[DETECTION_DELIGHT]:
                        good += 1
                        good_n += 1
                else:
                    felt = True
                    p = where
            hurt = felt
            if older or felt:
                at += 1
                if pool[at - 1] < par[SUPPORT]:
                    contacted = True
                    flows[CONTACTED] += 1
                    at += 1
                    if pool[at - 1] < par[FCR]:
                        resolved = True
                    elif older:
                        hurt = True  # a contact that fails is a bad experience of its own
            if hurt:
                n_bad += 1
                weight += severity[p]
                last_bad = p
                bad_n += 1
            if resolved:
                p = -1
                flows[RESOLVED] += 1
                at += 1
                if pool[at - 1] < par[RECOVERY_DELIGHT]:
                    good += 1
                    good_n += 1
            # Step 3: proactive outreach, to anyone or only to those at risk.
            count_before = np.float64(bad_count[i]) * par[DECAY]
            s = np.float64(satisfaction[i])
            k = slot + 2
            if par[AIMED] != 0.0 and not rules.at_risk(count_before, s):
                pass  # aimed outreach: only those at risk are offered it
            elif skip[k] > 0:
                skip[k] -= 1
            else:
                skip[k] = _gap(pool[at], log_q[k])
                at += 1
                good += 1
                flows[OUTREACH] += 1
                good_n += 1
            # Step 4: satisfaction, and the survey after a memorable interaction.
            r = np.float64(resting[i])
            s32 = np.float32(rules.update_satisfaction(
                s, r, good, weight, par[RELAXATION], par[GAIN], par[LOSS]
            ))  # fmt: skip
            s = np.float64(s32)
            if good > 0 or n_bad > 0 or contacted:
                flows[RESPONDENTS] += 1
                flows[SATISFIED] += s >= CSAT_SATISFIED
            # Step 5: churn, walk-away first, then the baseline hazard, on the person's uniform.
            walk = 0.0
            if n_bad > 0:
                walk = rules.walk_away_step(count_before, n_bad, par[INTERCEPT], par[SLOPE],
                                            np.float64(tolerance[i]), weight / n_bad)  # fmt: skip
            hazard = rules.baseline_hazard(np.float64(theta[i]), s, r, par[ELASTICITY])
            gone = u < rules.churn_chance(walk, hazard)
            # Step 6 (own part): a review, from the unhappy or the calm at their own rates.
            k = slot + (3 if n_bad > 0 else 4)
            if skip[k] > 0:
                skip[k] -= 1
            else:
                skip[k] = _gap(pool[at], log_q[k])
                at += 1
                flows[POSTED] += 1
                sums[STARS] += rules.review_stars(s)
            satisfaction[i] = s32
            bad_count[i] = count_before + weight
            if gone:
                problem[i] = -1
                stage[i] = CHURNED
                churn_step[i] = t
                cause[i] = last_bad if u < walk else baseline_cause
                if left == back:  # the leavers reach the voices listed: recount those instead
                    back = -1
                listed[left] = i
                left += 1
            else:
                problem[i] = p
                revenue += arpu[i]
                if g == ONBOARDING and t - acquired_step[i] >= par[ONBOARDING_STEPS]:
                    stage[i] = ACTIVE
        # The end-of-step stocks, and the person's voice for the next step. (Helpers here take
        # numbers only: an array passed to a function inside this loop costs two atomic
        # reference counts per call.)
        g = stage[i]
        s = np.float64(satisfaction[i])
        v = _voice(g, s, churn_step[i], t + 1, par[CHURNED_STEPS])
        stocks[g] += 1
        voice_promoters += v & 1
        voice_detractors += v >> 1
        if g in (ONBOARDING, ACTIVE):
            satisfaction_sum += s
            problems_open += problem[i] >= 0
            at_risk += rules.at_risk(np.float64(bad_count[i]) * par[DECAY], s)
            promoters += v == 1
            detractors += v == 2
        if v != voice[i] and back >= 0:
            if back - 1 >= left:
                back -= 1
                listed[back] = i
            else:
                back = -1  # the two lists would meet: recount every voice after the pass
    flows[GOOD], flows[BAD] = good_n, bad_n
    sums[REVENUE], sums[SATISFACTION_SUM] = revenue, satisfaction_sum
    stocks[PROMOTERS], stocks[DETRACTORS] = promoters, detractors
    stocks[PROBLEMS_OPEN], stocks[AT_RISK] = problems_open, at_risk
    stocks[VOICE_PROMOTERS], stocks[VOICE_DETRACTORS] = voice_promoters, voice_detractors
    cursor[NEXT], cursor[READ], cursor[LEFT], cursor[BACK] = stop, at, left, back
    if stop < n:
        return False
    # Word of mouth for the next step, from the voices that changed.
    if back < 0:
        listen(t + 1, par[CHURNED_STEPS], stage, satisfaction, churn_step, voice, heard, indptr,
               indices)  # fmt: skip
    else:
        for b in range(back, n):
            i = listed[b]
            v = _voice(stage[i], np.float64(satisfaction[i]), churn_step[i], t + 1,
                       par[CHURNED_STEPS])  # fmt: skip
            if network:
                _send(i, v, voice, heard, indptr, indices)
            else:
                voice[i] = v
    return True
