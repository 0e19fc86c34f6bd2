"""The vector engine: the same model with the population in NumPy arrays (struct of arrays).

Every step is a sequence of array expressions over index groups fixed at the start of the step
(prospects, onboarding, active, churned), calling the same :mod:`cxsim.rules` functions as the
agents engine, so the step stays synchronous. Each person's promoter and detractor contacts are
kept as one packed int32 and updated from the few people whose voice changed; with few contacts
that number is also the prospect's place in a table of buying chances made once a step. Rare
independent events with one chance for everyone (visits felt, problems, outreach, reviews,
returns) are drawn by the gaps between heads (:mod:`cxsim.engines.draws`): the same distribution
as one coin per person, far fewer random numbers, and a whole step's visits in one call. How the
step was profiled and cut: docs/SCALING.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxsim import network, rules
from cxsim.engines.base import Census, Channel, CustomerModel, Stage, Tally
from cxsim.engines.draws import chosen, heads
from cxsim.scenario import Network, NetworkKind

_F = np.float32
_TABLE_MAX = 1 << 16  # entries of the prospects' chance table (two per contact-count pair)
# Stages and channels as plain ints in the step (an IntEnum member costs a class lookup).
_PROSPECT, _ONBOARDING, _ACTIVE, _CHURNED = (int(g) for g in Stage)
_ADS, _REFERRAL, _WIN_BACK = int(Channel.ADS), int(Channel.REFERRAL), int(Channel.WIN_BACK)
_EMPTY = np.empty(0, dtype=np.int64)  # nobody (shared: an empty array has nothing to change)


@dataclass
class Stayed:
    """What the customers' part of a step leaves behind, for the end-of-step stocks."""

    promoters: int  # among the customers who stayed
    detractors: int
    satisfaction_sum: float
    left_onboarding: int
    left_active: int
    settled: int  # onboarding customers who became active
    problems_open: int


def others(taken: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The ``positions``-th numbers (0-based) of 0, 1, 2... leaving out the ascending ``taken``:
    ``np.setdiff1d(np.arange(m), taken)[positions]`` without building the m numbers. Before
    the k-th number left, taken[j] - j of them come before each taken[j]."""
    return positions + np.searchsorted(taken - np.arange(len(taken)), positions, side="right")


class VectorModel(CustomerModel):
    """The NumPy engine: no per-person Python objects; int8/int32/float32 state arrays.

    Gathers by an index array use ``take``, which is a third faster than fancy indexing
    (NumPy 2.4, arrays of a million) with the same values.
    """

    engine = "vector"
    dynamic = (*CustomerModel.SHARED_STATE, "stage", "satisfaction", "bad_count", "problem",
               "spell", "acquired_step", "channel", "churn_step", "cause", "_closed", "_heard",
               "_voices", "_stock")  # fmt: skip

    def _connect(self, spec: Network) -> None:
        # Each person's contacts (int32): all word of mouth needs; None when well mixed.
        self.adjacency = network.contacts(spec, self.n, self.rng)

    def _setup_people(self, traits: dict[str, np.ndarray]) -> None:
        n = self.n
        self.stage = traits["stage"].astype(np.int8)
        self.resting = traits["resting"].astype(_F)
        self.satisfaction = self.resting.copy()
        self.theta = traits["theta"].astype(_F)
        self.tolerance = traits["tolerance"].astype(_F)
        self.arpu = traits["arpu"].astype(_F)
        self.reads_reviews = traits["reads_reviews"]
        self.bad_count = np.zeros(n, _F)
        self.problem = np.full(n, -1, np.int8)  # touchpoint of the open problem, -1: none
        self.spell = np.zeros(n, np.int16)
        self.acquired_step = np.zeros(n, np.int32)
        self.channel = np.full(n, Channel.INITIAL, np.int8)
        self.churn_step = np.full(n, -1, np.int32)
        self.cause = np.full(n, -1, np.int8)
        self.well_mixed = self.spec.network.kind is NetworkKind.well_mixed
        degree = self.adjacency.degree() if self.adjacency is not None else np.zeros(1)
        # Word of mouth counts both voices in one int32: promoters + detractors x base, with a
        # base a power of two above anyone's number of contacts, so shifts and masks take the
        # counts apart (well mixed: the counts are market-wide).
        self._shift = int(degree.max(initial=0)).bit_length()
        self._base = 1 << self._shift
        self._packed = 2 * self._base**2 <= 2**31  # the largest key, 2 base^2 - 1, fits
        # Chances by number of promoter / detractor contacts, looked up instead of recomputed.
        contacts = np.arange(self._base)
        w, q = self.spec.behaviour.negative_word_of_mouth, self.spec.behaviour.referral
        self._warning_by_contacts = rules.warning_factor(contacts, w.rate, w.impact).astype(_F)
        self._referral_by_contacts = rules.referral_chance(contacts, q.rate, q.conversion).astype(
            _F
        )
        # A prospect's chances of buying are looked up by (review reader, detractors,
        # promoters) when that table is small (see _buying_chances).
        self._tabled = self.well_mixed or 2 * self._base**2 <= _TABLE_MAX
        # Packed voice by likelihood-to-recommend answer (0-10): a detractor counts base, a
        # promoter 1; the recently churned only complain.
        answers = np.arange(11)
        detractor = np.where(answers <= rules.DETRACTOR_MAX, self._base, 0).astype(np.int32)
        self._voice_churned = detractor
        self._voice_customer = detractor + (answers >= rules.PROMOTER_MIN).astype(np.int32)
        self._decay = _F(self.memory.decay)
        self._closed: list[tuple[np.ndarray, ...]] = []
        self._heard: np.ndarray | None = None  # packed contact counts of everyone (see _hear)
        self._voices: np.ndarray | None = None  # the packed voices they were counted from

    # --- one step -------------------------------------------------------------------------------

    def _advance(self, t: int) -> Tally:
        tally = self.new_tally()
        stage = self.stage
        # nonzero of a bool array, without flatnonzero's ravel and wrappers
        groups = [(stage == g).nonzero()[0] for g in (_PROSPECT, _ONBOARDING, _ACTIVE, _CHURNED)]
        prospects, onboarding, active, churned = groups
        customers = np.concatenate([onboarding, active])
        since = t - self.churn_step.take(churned)  # steps since they left (unchanged by the step)
        heard = self._word_of_mouth(groups, customers, since)
        visits, impressions = self._visits(len(onboarding), len(active), len(prospects), tally)
        stayed = self._customers_step(t, customers, len(onboarding), visits, tally)
        joiners = self._prospects_step(t, prospects, heard, impressions, tally)
        self._return_step(churned, since, tally)
        self._stock = self._stocks_after(groups, stayed, joiners, tally)
        return tally

    def _stocks_after(self, groups, stayed: Stayed, joiners: np.ndarray, tally: Tally) -> Census:
        """End-of-step stocks from the step's own arrays, without a pass over everyone."""
        joined = len(joiners)
        to_onboarding = joined if self.spec.behaviour.onboarding_steps else 0
        left = stayed.left_onboarding + stayed.left_active
        s = self.resting[joiners]
        ltr = rules.likelihood_to_recommend(s)
        return Census(
            prospects=len(groups[_PROSPECT]) - joined + tally.returned,
            onboarding=len(groups[_ONBOARDING])
            - stayed.left_onboarding
            - stayed.settled
            + to_onboarding,
            active=len(groups[_ACTIVE])
            - stayed.left_active
            + stayed.settled
            + joined
            - to_onboarding,
            churned=len(groups[_CHURNED]) + left - tally.returned,
            promoters=stayed.promoters + int(np.count_nonzero(ltr >= rules.PROMOTER_MIN)),
            detractors=stayed.detractors + int(np.count_nonzero(ltr <= rules.DETRACTOR_MAX)),
            satisfaction_sum=stayed.satisfaction_sum + float(s.sum(dtype=np.float64)),
            problems_open=stayed.problems_open,
        )

    def _word_of_mouth(self, groups: list[np.ndarray], customers: np.ndarray, since: np.ndarray):
        """Promoters and detractors each prospect knows, from the start-of-step state.

        Only customers and the recently churned have a voice, so it is worked out over those
        groups' indices rather than with masks over the whole population.
        """
        s = self.satisfaction
        ltr = rules.likelihood_to_recommend(s.take(customers))
        churned = groups[_CHURNED]
        recent = churned[since <= self.spec.behaviour.negative_word_of_mouth.churned_steps]
        recent_ltr = rules.likelihood_to_recommend(s.take(recent))
        prospects = groups[_PROSPECT]
        if self.well_mixed:
            per = self.spec.network.mean_degree / max(self.n - 1, 1)
            promoters = np.count_nonzero(ltr >= rules.PROMOTER_MIN)
            detractors = np.count_nonzero(ltr <= rules.DETRACTOR_MAX)
            detractors += np.count_nonzero(recent_ltr <= rules.DETRACTOR_MAX)
            return per * promoters, per * detractors
        # Packed voices: a promoter counts 1, a detractor ``base`` (more than anyone's contacts);
        # the churned only complain.
        base = self._base
        voices = np.zeros(self.n, np.int32)
        voices[recent] = self._voice_churned.take(recent_ltr)
        voices[customers] = self._voice_customer.take(ltr)
        if not self._packed:  # someone has 32,768+ contacts: count the two apart
            # (int32 sums: an int8 one would wrap past 127 contacts)
            promoters = (self.adjacency @ (voices == 1).astype(np.int32)).take(prospects)
            detractors = (self.adjacency @ (voices == base).astype(np.int32)).take(prospects)
            marks = self._reader_marks(self.reads_reviews.take(prospects), np.int64)
            return promoters + base * detractors.astype(np.int64) + marks
        self._hear(voices)
        return self._heard.take(prospects)

    def _reader_marks(self, reads: np.ndarray, dtype=np.int32) -> np.ndarray:
        """The review readers' part of the key: base^2 for a reader, 0 for anyone else."""
        return reads.astype(dtype) << 2 * self._shift

    def _hear(self, voices: np.ndarray) -> None:
        """Bring every person's key to the prospects' chance table up to date with this step's
        voices: promoter contacts + detractor contacts x base + (reads reviews) x base^2.

        Few people change their voice in a step (a customer crossing a promoter or detractor
        line, joiners, leavers, the churned falling silent), so the counts are updated by the
        change of those few, sent to their contacts, instead of a full product with the
        adjacency matrix: the same integers, a fraction of the memory traffic. The counts are
        linear in the voices, so a packed difference (which may be negative) adds exactly.
        """
        if self._heard is None:  # before the first step: nobody heard, only the readers' mark
            self._heard = self._reader_marks(self.reads_reviews)
            self._voices = np.zeros(self.n, np.int32)
        changed = (voices != self._voices).nonzero()[0]
        # Sending the changes costs some 5 ns per contact reached, the full product some 8 ns
        # per entry of the adjacency: above about half the people, the product is cheaper.
        if len(changed) > self.n // 2:
            self._heard = self.adjacency @ voices + self._reader_marks(self.reads_reviews)
        elif len(changed):
            indptr, indices = self.adjacency.indptr, self.adjacency.indices
            start = indptr.take(changed)
            lengths = indptr.take(changed + 1) - start
            # Positions of the changed people's contacts in ``indices``, run after run.
            ends = np.cumsum(lengths)
            at = np.arange(ends[-1] if len(ends) else 0) + np.repeat(
                start - ends + lengths, lengths
            )
            np.add.at(
                self._heard,
                indices.take(at),
                np.repeat(voices.take(changed) - self._voices.take(changed), lengths),
            )
        self._voices = voices

    def _visits(self, n_onboarding: int, n_active: int, n_prospects: int, tally: Tally):
        """Step 1 for everyone, drawn at once: each person of a stage feels each touchpoint of
        it with chance P(bad or good), all of them drawn as one call of :func:`heads`; a visit
        felt is bad if a uniform is below P(bad) / P(bad or good). The same distribution as one
        uniform per person and touchpoint.

        Returns the customers' (who felt a visit: positions, the onboarding first; whether it
        was bad; the touchpoint), one entry per visit felt, in touchpoint order, and the
        prospects' positions with a bad visit (possibly repeated); counts both in ``tally``."""
        sizes: list[int] = []
        chances: list[float] = []
        offsets: list[int] = []
        points: list[int] = []
        ratios: list[float] = []
        for stage, m, offset in ((_ONBOARDING, n_onboarding, 0), (_ACTIVE, n_active, n_onboarding),
                                 (_PROSPECT, n_prospects, 0)):  # fmt: skip
            for point, p_bad, p_felt in self.levers.visit_draws(stage):
                sizes.append(m)
                chances.append(p_felt)
                offsets.append(offset)
                points.append(point)
                ratios.append(p_bad / p_felt)
            if stage == _ACTIVE:
                customer_groups = len(sizes)
        felt, counts = heads(self.rng, sizes, chances, offsets)
        is_bad = self.rng.random(len(felt), dtype=_F) < np.repeat(np.array(ratios, _F), counts)
        n_bad = int(np.count_nonzero(is_bad))
        tally.experiences_bad += n_bad
        tally.experiences_good += len(felt) - n_bad
        per_point = counts[:customer_groups]
        split = int(per_point.sum())
        touchpoint = np.repeat(np.array(points[:customer_groups], np.int8), per_point)
        spoiled = felt[split:][is_bad[split:]]
        return (felt[:split], is_bad[:split], touchpoint), spoiled

    def _customers_step(
        self, t: int, people: np.ndarray, n_onboarding: int, visits, tally: Tally
    ) -> Stayed:
        spec, lv, memory, rng = self.spec, self.levers, self.memory, self.rng
        behaviour = spec.behaviour
        m = len(people)
        # Step 1: visits. Who had which experience in steps 1-3 is collected and counted once,
        # after step 3 (nothing in between reads the counts).
        felt, is_bad, touchpoint = visits  # drawn by _visits, which counted them
        unhappy_visits, bad_points = felt[is_bad], touchpoint[is_bad]
        goods = [felt[~is_bad]]

        # Step 2: problems. A new one may be detected, else it is a bad experience once; an open
        # one may fade; a support contact that does not resolve an older one is a new one.
        problem = self.problem.take(people)
        has_open = problem >= 0
        still_open = has_open.nonzero()[0]
        faded = still_open[rng.random(len(still_open)) < behaviour.problem_fade]
        problem[faded] = -1
        older = problem >= 0  # open before the step and not faded
        arising, _ = heads(
            rng, (n_onboarding, m - n_onboarding),
            (lv.problem_total[_ONBOARDING], lv.problem_total[_ACTIVE]), (0, n_onboarding),
        )  # fmt: skip
        arising = arising[~has_open[arising]]  # one open problem at a time (in order)
        tally.problems_arising += len(arising)
        new_felt = arising
        if len(arising):
            stage_of = np.where(arising < n_onboarding, _ONBOARDING, _ACTIVE)
            u, found, delight = rng.random((3, len(arising)))
            where = (u[:, None] >= lv.problem_cumulative[stage_of]).sum(axis=1)
            detected = found < lv.detection[where]
            n_detected = int(np.count_nonzero(detected))
            tally.problems_detected += n_detected
            if n_detected:
                delighted = arising[detected & (delight < lv.detection_delight)]
                goods.append(delighted)
                tally.experiences_good += len(delighted)
                new_felt, where = arising[~detected], where[~detected]
            problem[new_felt] = where
        # Open now: the older ones and the new felt ones, in order (problem >= 0 is exactly them).
        open_now = (problem >= 0).nonzero()[0]
        contacted = open_now[rng.random(len(open_now)) < lv.support_contact]
        fixed = rng.random(len(contacted)) < lv.first_contact_resolution
        resolved, failed = contacted[fixed], contacted[~fixed]
        hurt = np.concatenate([new_felt, failed[older[failed]]])  # new problems, failed contacts
        hurt_points = problem.take(hurt)
        tally.experiences_bad += len(hurt)
        problem[resolved] = -1
        recovered = resolved[rng.random(len(resolved)) < lv.recovery_delight]
        goods.append(recovered)
        tally.problems_contacted += len(contacted)
        tally.problems_resolved += len(resolved)
        tally.experiences_good += len(recovered)

        # Step 3: proactive outreach, to random customers or aimed at those at risk.
        count_before = self.bad_count.take(people) * self._decay
        s_before = self.satisfaction.take(people)
        if lv.outreach_at_risk:
            at_risk = rules.at_risk(count_before, s_before).nonzero()[0]
            chance = rules.outreach_chance(lv.outreach, m, len(at_risk))
            reached = at_risk[chosen(rng, len(at_risk), chance)]
        else:
            reached = chosen(rng, m, lv.outreach)
        goods.append(reached)
        tally.outreach_contacts += len(reached)
        tally.experiences_good += len(reached)

        # The counts of steps 1-3: good and bad experiences per customer, the bad ones' summed
        # severity (added in the order they happened, as float32 one by one) and the touchpoint
        # of the last bad one (journey order, then a problem's).
        unhappy_all = np.concatenate([unhappy_visits, hurt])
        bad = np.bincount(unhappy_all, minlength=m).astype(np.int8)
        good = np.bincount(np.concatenate(goods), minlength=m).astype(np.int8)
        if lv.uniform_severity:  # every weight is 1: the sum is the count
            weight = bad.astype(_F)
        else:
            weight = np.zeros(m, _F)
            severity = lv.severity
            np.add.at(
                weight,
                unhappy_all,
                np.concatenate([severity.take(bad_points), severity.take(hurt_points)]),
            )
        last_bad = np.full(m, -1, np.int8)
        np.maximum.at(last_bad, unhappy_visits, bad_points)  # touchpoints come in journey order
        last_bad[hurt] = hurt_points

        # Step 4: memory and satisfaction (bad experiences weighted by severity).
        sat = behaviour.satisfaction
        resting = self.resting.take(people)
        s = rules.update_satisfaction(
            s_before, resting, good, bad if lv.uniform_severity else weight,
            sat.relaxation, sat.gain, sat.loss,
        ).astype(_F, copy=False)  # fmt: skip
        surveyed = (good | bad) != 0  # after a memorable interaction (counts are never < 0)
        surveyed[contacted] = True
        tally.csat_respondents += int(np.count_nonzero(surveyed))
        tally.csat_satisfied += int(np.count_nonzero(surveyed & (s >= rules.CSAT_SATISFIED)))

        # Step 5: churn, walk-away first, then baseline hazard; one uniform per customer.
        walk = np.zeros(m, _F)
        unhappy = (bad != 0).nonzero()[0]  # on a bool array, several times faster
        if len(unhappy):
            n_bad = bad.take(unhappy)
            mean_weight = 1.0 if lv.uniform_severity else weight.take(unhappy) / n_bad
            walk[unhappy] = rules.walk_away_step(
                count_before.take(unhappy), n_bad, memory.intercept, memory.slope,
                self.tolerance.take(people.take(unhappy)), mean_weight,
            )  # fmt: skip
        leaving = rules.baseline_hazard(
            self.theta.take(people), s, resting, behaviour.baseline_churn.satisfaction_elasticity
        )
        # where no walk-away chance, the churn chance is the hazard itself
        leaving[unhappy] = rules.churn_chance(walk.take(unhappy), leaving.take(unhappy))
        u = rng.random(m, dtype=_F)
        gone = (u < leaving).nonzero()[0]
        # The cause, for the few who leave: their last bad touchpoint if they walked away.
        cause = np.where(u[gone] < walk[gone], last_bad[gone], len(self.causes) - 1).astype(np.int8)

        # Step 6 (own part): reviews, by everyone who was a customer this step.
        r = behaviour.reviews
        picks, (after_bad, _) = heads(
            rng, (len(unhappy), m - len(unhappy)), (r.post_rate_after_bad, r.post_rate)
        )
        posted = np.concatenate(
            [unhappy.take(picks[:after_bad]), others(unhappy, picks[after_bad:])]
        )
        tally.reviews_posted += len(posted)
        tally.review_stars += float(rules.review_stars(s[posted]).sum(dtype=np.float64))

        # Write back the customers' state; stocks of those who stay as all less the leavers.
        self.satisfaction[people] = s
        self.bad_count[people] = count_before + weight
        problem[gone] = -1
        self.problem[people] = problem
        left = people[gone]
        arpu_left = self.arpu[left]
        self._churn(t, left, cause, arpu_left, tally)
        arpu = self.arpu.take(people).sum(dtype=np.float64) - arpu_left.sum(dtype=np.float64)
        tally.revenue += float(arpu)
        ltr = rules.likelihood_to_recommend(s)
        ltr[gone] = rules.PROMOTER_MIN - 1  # the leavers as passives: counted in neither group
        # gone is in order: the onboarding leavers come first
        left_onboarding = int(gone.searchsorted(n_onboarding))
        onboarding = people[:n_onboarding]
        ready = self.acquired_step.take(onboarding) <= t - behaviour.onboarding_steps
        ready[gone[:left_onboarding]] = False
        settled = onboarding[ready]
        self.stage[settled] = _ACTIVE
        return Stayed(
            promoters=int(np.count_nonzero(ltr >= rules.PROMOTER_MIN)),
            detractors=int(np.count_nonzero(ltr <= rules.DETRACTOR_MAX)),
            satisfaction_sum=float(s.sum(dtype=np.float64) - s[gone].sum(dtype=np.float64)),
            left_onboarding=left_onboarding,
            left_active=len(gone) - left_onboarding,
            settled=len(settled),
            problems_open=int(np.count_nonzero(problem >= 0)),  # the leavers' were closed
        )

    def _churn(
        self, t: int, leavers: np.ndarray, cause: np.ndarray, arpu: np.ndarray, tally: Tally
    ) -> None:
        if not len(leavers):
            return
        tally.leavers.append((arpu, self.theta[leavers], cause))
        self._closed.append(
            (
                leavers,
                self.spell[leavers],
                self.acquired_step[leavers],
                self.channel[leavers],
                t,  # churn step, made a column in _spells
                cause,
                arpu,
            )
        )
        self.stage[leavers] = _CHURNED
        self.churn_step[leavers] = t
        self.cause[leavers] = cause

    def _prospects_step(
        self, t: int, people: np.ndarray, heard, spoiled: np.ndarray, tally: Tally
    ) -> np.ndarray:
        """Step 7 for prospects, after their impressions of step 1 (``spoiled``: who had a bad
        one, drawn by :meth:`_visits`): advertising or referral. Returns the new customers.

        One uniform per prospect decides, as in the agents engine, and stays one uniform whatever
        the chances: common random numbers then keep a prospect's draw when a parameter moves,
        which the paired comparisons and the fitter rely on (drawing buyers by thinning, with
        candidates picked at a bound that moves with the parameters, was tried and lost that).
        """
        b = self.spec.behaviour
        m = len(people)
        referral, buying, key = self._buying_chances(people, heard)
        u = self.rng.random(m, dtype=_F)
        buys = u < (buying if key is None else buying.take(key))
        buys[spoiled] = False  # a bad first impression loses the sale this step
        bought = buys.nonzero()[0]
        joiners = people[bought]
        referred = u[bought] < (referral[bought] if key is None else referral.take(key[bought]))
        returning = self.churn_step[joiners] >= 0  # former customers: win-backs
        channel = np.where(referred, _REFERRAL, _ADS)
        win_backs = int(np.count_nonzero(returning))
        if win_backs:
            channel[returning] = _WIN_BACK
            back = joiners[returning]
            self.spell[back] += 1
            # (everyone else's churn step and cause are already -1: they never left)
            self.churn_step[back] = -1
            self.cause[back] = -1
            referred &= ~returning
        self.channel[joiners] = channel
        self.stage[joiners] = _ONBOARDING if b.onboarding_steps else _ACTIVE
        self.acquired_step[joiners] = t
        new_referral = int(np.count_nonzero(referred))
        tally.new_referral += new_referral
        tally.new_ads += len(joiners) - win_backs - new_referral
        tally.new_win_back += win_backs
        return joiners

    def _buying_chances(self, people: np.ndarray, heard):
        """(chance of buying by referral, by referral or advertising, key): a prospect's one
        uniform below the first is a referral, below the second a sale.

        The chances depend only on (review reader, detractor contacts, promoter contacts), so
        with few contacts they are computed once a step for every such triple, and ``key`` is
        each prospect's place in them (see :meth:`_hear`); otherwise they are per prospect, by
        the same formulas, and ``key`` is None.
        """
        b = self.spec.behaviour
        if self.well_mixed:  # mean-field contact counts, the same for every prospect
            promoters, detractors = heard
            w, q = b.negative_word_of_mouth, b.referral
            warning = np.array([rules.warning_factor(detractors, w.rate, w.impact)], _F)
            referral = np.array([rules.referral_chance(promoters, q.rate, q.conversion)], _F)
            key = self.reads_reviews.take(people).view(np.int8)
        elif self._tabled:
            warning, referral, key = self._warning_by_contacts, self._referral_by_contacts, heard
        else:  # many contacts: per prospect, the factor by (reader, detractors) looked up
            factor = self._factors(self._warning_by_contacts).take(heard >> self._shift)
            referral = self._referral_by_contacts.take(heard & (self._base - 1))
            return (*self._chances(referral, factor), None)
        by_referral, buying = self._chances(
            referral[None, None, :], self._factors(warning)[:, :, None]
        )
        return by_referral.ravel(), buying.ravel(), key

    def _factors(self, warning: np.ndarray) -> np.ndarray:
        """The factor on a prospect's chances by (review reader, detractor contacts), (2, D)."""
        factor = np.empty((2, len(warning)), warning.dtype)  # np.stack's values, less overhead
        factor[0] = warning
        np.multiply(warning, _F(self.review_multiplier()), out=factor[1])
        return factor

    def _chances(self, referral, factor) -> tuple[np.ndarray, np.ndarray]:
        """(referral, referral or advertising) chances from the referral chance of a prospect's
        promoter contacts and the factor on it from detractors and reviews."""
        referral = rules.damped(referral, factor)
        ad = rules.damped(self.spec.behaviour.ad_conversion, factor)
        return referral, np.maximum(referral, rules.adoption_chance(ad, referral))

    def _return_step(self, people: np.ndarray, since: np.ndarray, tally: Tally) -> None:
        """Win-back: after the wait, former customers (``since``: steps since each left)
        return to the market at a rate."""
        w = self.spec.behaviour.win_back
        if not w.enabled or not len(people):
            return
        eligible = people[since > w.wait]
        back = eligible[chosen(self.rng, len(eligible), w.rate)]
        if len(back):
            self.stage[back] = _PROSPECT
            self.satisfaction[back] = self.resting[back]
            self.bad_count[back] = 0
            tally.returned += len(back)

    # --- stocks and tables ----------------------------------------------------------------------

    def _census(self) -> Census:
        return self._stock if self.now else self.recount()

    def recount(self) -> Census:
        """Stocks counted over the whole population (the step keeps them up to date)."""
        counts = np.bincount(self.stage, minlength=4)
        customer = (self.stage == Stage.ONBOARDING) | (self.stage == Stage.ACTIVE)
        s = self.satisfaction[customer]
        ltr = rules.likelihood_to_recommend(s)
        return Census(
            *(int(c) for c in counts),
            promoters=int(np.count_nonzero(ltr >= rules.PROMOTER_MIN)),
            detractors=int(np.count_nonzero(ltr <= rules.DETRACTOR_MAX)),
            satisfaction_sum=float(s.sum(dtype=np.float64)),
            problems_open=int(np.count_nonzero(self.problem[customer] >= 0)),
        )

    def _spells(self) -> pd.DataFrame:
        customer = np.flatnonzero((self.stage == Stage.ONBOARDING) | (self.stage == Stage.ACTIVE))
        still = (
            customer,
            self.spell[customer],
            self.acquired_step[customer],
            self.channel[customer],
            np.full(len(customer), -1, np.int32),
            np.full(len(customer), -1, np.int8),
            self.arpu[customer],
        )
        closed = [
            (*c[:4], np.full(len(c[0]), c[4], np.int32), *c[5:]) for c in self._closed
        ]  # the churn step, kept as a number per step, as a column
        cols = [np.concatenate(c) for c in zip(*closed, still, strict=True)]
        names = np.array([*self.causes, ""], dtype=object)
        return pd.DataFrame(
            {
                "person": cols[0],
                "spell": cols[1],
                "acquired_step": cols[2],
                "channel": cols[3],
                "churn_step": cols[4],
                "cause": names[cols[5]],
                "arpu": cols[6].astype(np.float64),
            }
        )
