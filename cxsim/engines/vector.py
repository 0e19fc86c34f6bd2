"""The vector engine: the same model with the population in NumPy arrays (struct of arrays).

A step is one compiled pass over everyone (:func:`cxsim.engines.kernels.step`), branching on the
stage each person had at the start of the step, so the step stays synchronous; it calls the same
:mod:`cxsim.rules` functions as the agents engine. Contact counts for word of mouth are kept up
to date from the people whose voice changed. This module sets the arrays up, passes each step's
levers to the kernel and turns what it counted into the step's Tally and Census.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxsim import network, rules
from cxsim.engines import kernels
from cxsim.engines.base import Census, Channel, CustomerModel, Stage, Tally
from cxsim.scenario import NetworkKind

_F = np.float32


class VectorModel(CustomerModel):
    """The compiled engine: no per-person Python objects; int8/int32/float32 state arrays."""

    engine = "vector"

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
        # Every person's own uniform per step (see cxsim.engines.kernels): a stream of its own,
        # spawned from the run's seed, so it does not depend on the draws made before it.
        self._own = self.rng.spawn(1)[0]
        self._uniform = np.empty(n, _F)
        self._cursor = np.zeros(4, np.int64)  # where a step stands (kernels.NEXT, ...)
        self._pool_size = n // 4 + 4096  # uniforms for the rare events, adapted to each step's use
        self.well_mixed = self.spec.network.kind is NetworkKind.well_mixed
        if self.well_mixed:
            self._indptr = self._indices = np.empty(0, np.int32)  # the CSR arrays' type
        else:
            graph = network.adjacency(self.edges, n)
            self._indptr, self._indices = graph.indptr, graph.indices
        degree = np.diff(self._indptr) if len(self._indptr) else np.zeros(1, np.int64)
        # Chances by number of promoter / detractor contacts, looked up instead of recomputed.
        contacts = np.arange(int(degree.max(initial=0)) + 1)
        w, q = self.spec.behaviour.negative_word_of_mouth, self.spec.behaviour.referral
        self._warning_by_contacts = rules.warning_factor(contacts, w.rate, w.impact)
        self._referral_by_contacts = rules.referral_chance(contacts, q.rate, q.conversion)
        self.voice = np.zeros(n, np.int8)  # 1 promoter, 2 detractor (see kernels._voice)
        # Promoters (row 0) and detractors (row 1) among each person's contacts.
        self.heard = np.zeros((2, 0 if self.well_mixed else n), np.int32)
        self._listed = np.empty(n, np.int32)  # leavers, then the voices changed (from the end)
        self._flows = np.zeros(len(kernels.FLOWS), np.int64)
        self._stocks = np.zeros(kernels.N_STOCKS, np.int64)
        self._sums = np.zeros(len(kernels.SUMS))
        self._slots = kernels.slots(len(self.spec.touchpoints))
        self._skip = np.zeros(self._slots["count"], np.int64)
        self._closed: list[tuple[np.ndarray, ...]] = []
        kernels.listen(1, self.spec.behaviour.negative_word_of_mouth.churned_steps, self.stage,
                       self.satisfaction, self.churn_step, self.voice, self.heard, self._indptr,
                       self._indices)  # fmt: skip
        # What the first step reads of the stocks (the kernel counts them at each step's end).
        self._stocks[:4] = np.bincount(self.stage, minlength=4)
        voices = np.bincount(self.voice, minlength=3)
        self._stocks[kernels.VOICE_PROMOTERS] = voices[1]
        self._stocks[kernels.VOICE_DETRACTORS] = voices[2]
        customer = (self.stage == Stage.ONBOARDING) | (self.stage == Stage.ACTIVE)
        at_risk = rules.at_risk(self.bad_count[customer] * self.memory.decay,
                                self.satisfaction[customer])  # fmt: skip
        self._stocks[kernels.AT_RISK] = np.count_nonzero(at_risk)

    # --- one step -------------------------------------------------------------------------------

    def _parameters(self) -> np.ndarray:
        """The step's constants, in the order of ``kernels.PARAMETERS``."""
        b, lv, memory = self.spec.behaviour, self.levers, self.memory
        stocks = self._stocks
        referral = warning = 1.0
        if self.well_mixed:  # mean-field contact counts, the same for every prospect
            per = self.spec.network.mean_degree / max(self.n - 1, 1)
            w, q = b.negative_word_of_mouth, b.referral
            referral = rules.referral_chance(per * stocks[kernels.VOICE_PROMOTERS], q.rate,
                                             q.conversion)  # fmt: skip
            warning = rules.warning_factor(per * stocks[kernels.VOICE_DETRACTORS], w.rate, w.impact)
        values = {
            "decay": memory.decay,
            "intercept": memory.intercept,
            "slope": memory.slope,
            "relaxation": b.satisfaction.relaxation,
            "gain": b.satisfaction.gain,
            "loss": b.satisfaction.loss,
            "elasticity": b.baseline_churn.satisfaction_elasticity,
            "problem_fade": b.problem_fade,
            "detection_delight": lv.detection_delight,
            "support_contact": lv.support_contact,
            "first_contact_resolution": lv.first_contact_resolution,
            "recovery_delight": lv.recovery_delight,
            "ad_conversion": b.ad_conversion,
            "review_multiplier": self.review_multiplier(),
            "onboarding_steps": b.onboarding_steps,
            "churned_steps": b.negative_word_of_mouth.churned_steps,
            "win_back_wait": b.win_back.wait,
            "win_back_rate": b.win_back.rate if b.win_back.enabled else 0.0,
            "baseline_cause": len(self.causes) - 1,
            "aimed": float(lv.outreach_at_risk),
            "referral": referral,
            "warning": warning,
        }
        return np.array([values[name] for name in kernels.PARAMETERS], dtype=np.float64)

    def _chances(self, parameters: np.ndarray) -> np.ndarray:
        """The chance of each rare event (see ``kernels.slots``)."""
        lv, r, at = self.levers, self.spec.behaviour.reviews, self._slots
        T = len(self.spec.touchpoints)
        chance = np.zeros(at["count"])
        chance[: 3 * T] = (lv.bad[:3] + lv.good[:3]).ravel()
        chance[at["problem_onboarding"]] = lv.problem_total[Stage.ONBOARDING]
        chance[at["problem_active"]] = lv.problem_total[Stage.ACTIVE]
        if lv.outreach_at_risk:
            customers = int(self._stocks[Stage.ONBOARDING] + self._stocks[Stage.ACTIVE])
            outreach = rules.outreach_chance(lv.outreach, customers,
                                             int(self._stocks[kernels.AT_RISK]))  # fmt: skip
        else:
            outreach = lv.outreach
        chance[at["outreach"]] = outreach
        chance[at["review_bad"]] = r.post_rate_after_bad
        chance[at["review_calm"]] = r.post_rate
        return chance

    def _advance(self, t: int) -> Tally:
        lv = self.levers
        par = self._parameters()
        chance = self._chances(par)
        self._own.random(out=self._uniform, dtype=_F)
        cursor = self._cursor
        cursor[:] = 0
        read, done = 0, False
        while not done:  # usually once: the pool is sized from the last step's use
            pool = self.rng.random(self._pool_size)
            done = kernels.step(
                t, par, chance, lv.bad[:3], lv.severity, lv.problem_cumulative, lv.detection,
                self._referral_by_contacts, self._warning_by_contacts, self._uniform, pool,
                cursor, self._skip, self.stage, self.resting, self.satisfaction, self.theta,
                self.tolerance, self.arpu, self.reads_reviews, self.bad_count, self.problem,
                self.spell, self.acquired_step, self.channel, self.churn_step, self.cause,
                self.voice, self.heard, self._indptr, self._indices, self._listed, self._flows,
                self._stocks, self._sums,
            )  # fmt: skip
            read += int(cursor[kernels.READ])
        self._pool_size = read + read // 4 + 4096
        left = int(cursor[kernels.LEFT])
        tally = Tally(**{name: int(x) for name, x in zip(kernels.FLOWS, self._flows, strict=True)})
        tally.review_stars = float(self._sums[kernels.STARS])
        tally.revenue = float(self._sums[kernels.REVENUE])
        self._churn(t, self._listed[:left].astype(np.int64), tally)
        stocks = self._stocks
        self._stock = Census(
            *(int(stocks[g]) for g in Stage),
            promoters=int(stocks[kernels.PROMOTERS]),
            detractors=int(stocks[kernels.DETRACTORS]),
            satisfaction_sum=float(self._sums[kernels.SATISFACTION_SUM]),
            problems_open=int(stocks[kernels.PROBLEMS_OPEN]),
        )
        return tally

    def _churn(self, t: int, leavers: np.ndarray, tally: Tally) -> None:
        """Record the step's leavers (the kernel has moved them to churned)."""
        if not len(leavers):
            return
        cause = self.cause[leavers]
        tally.leavers.append((self.arpu[leavers], self.theta[leavers], cause))
        self._closed.append(
            (
                leavers,
                self.spell[leavers],
                self.acquired_step[leavers],
                self.channel[leavers],
                np.full(len(leavers), t, np.int32),
                cause,
                self.arpu[leavers],
            )
        )

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
        cols = [np.concatenate(c) for c in zip(*self._closed, still, strict=True)]
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
