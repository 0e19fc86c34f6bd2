"""The agents engine: one Mesa agent per person on Mesa's network space.

The reference implementation, readable rule by rule: a person's ``step`` follows steps 1-8 of the
model (docs/ODD.md) with one verb each. Steps are synchronous: every person first states what they
say about the company (``speak``), prospects then count what their contacts say (``listen``), and
only then does anyone act (``step``), so no decision reads state changed in the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mesa.discrete_space import CellAgent

from cxsim import compat, network, rules
from cxsim.engines.base import CUSTOMER_TABLE_COLUMNS, Census, Channel, CustomerModel, Stage, Tally
from cxsim.scenario import Network, NetworkKind

PROMOTER, NEUTRAL, DETRACTOR = 1, 0, -1


@dataclass
class Experiences:
    """What happened to one person in the current step."""

    good: int = 0
    bad: int = 0
    weight: float = 0.0  # the bad experiences' summed severity
    last_bad: int = -1  # touchpoint index of the most recent bad experience
    contacted: bool = False  # called support about a problem

    def hurt(self, where: int, severity: float) -> None:
        """A bad experience at touchpoint ``where``."""
        self.bad += 1
        self.weight += severity
        self.last_bad = where


class Person(CellAgent):
    """A prospect, customer or former customer, placed on one node of the social network."""

    _ids = compat.AgentIds()  # Mesa 3.3's own would keep every model alive (see compat)

    def __init__(self, model: AgentsModel, index: int, traits: dict[str, np.ndarray]) -> None:
        super().__init__(model)
        self.index = index
        self.stage = Stage(int(traits["stage"][index]))
        self.resting = float(traits["resting"][index])
        self.theta = float(traits["theta"][index])
        self.tolerance = float(traits["tolerance"][index])
        self.arpu = float(traits["arpu"][index])
        self.reads_reviews = bool(traits["reads_reviews"][index])
        self.satisfaction = self.resting
        self.bad_count = 0.0
        self.problem = -1  # touchpoint index of the open problem, -1 when none
        self.spell = 0
        self.acquired_step = 0
        self.channel = Channel.INITIAL
        self.churn_step = -1
        self.cause = -1
        self.voice = NEUTRAL
        self.promoter_contacts = 0.0
        self.detractor_contacts = 0.0

    @property
    def is_customer(self) -> bool:
        return self.stage is Stage.ONBOARDING or self.stage is Stage.ACTIVE

    # --- phase 1 and 2: word of mouth, read from the start-of-step state ------------------------

    def speak(self) -> None:
        """Decide what this person tells others this step: promote, warn, or nothing."""
        model = self.model
        if self.is_customer:
            if rules.is_promoter(self.satisfaction):
                self.voice = PROMOTER
            elif rules.is_detractor(self.satisfaction):
                self.voice = DETRACTOR
            else:
                self.voice = NEUTRAL
        elif self.stage is Stage.CHURNED:
            recent = model.now - self.churn_step <= model.wom.churned_steps
            self.voice = DETRACTOR if recent and rules.is_detractor(self.satisfaction) else NEUTRAL
        else:
            self.voice = NEUTRAL

    def listen(self) -> None:
        """Prospects count promoters and detractors among their contacts."""
        if self.stage is not Stage.PROSPECT:
            return
        if self.model.well_mixed:
            self.promoter_contacts, self.detractor_contacts = self.model.mean_field
            return
        # The cells linked to this one, not Mesa's cell.neighborhood: Mesa caches that in a
        # functools.cache of the Cell class, which keeps every cell asked, and through its
        # agents their model, alive for good.
        voices = [other.voice for cell in self.cell.connections.values() for other in cell.agents]
        self.promoter_contacts = voices.count(PROMOTER)
        self.detractor_contacts = voices.count(DETRACTOR)

    # --- phase 3: act ---------------------------------------------------------------------------

    def step(self) -> None:
        if self.stage is Stage.CHURNED:
            self.consider_returning()
            return
        seen = self.visit_touchpoints()
        if self.stage is Stage.PROSPECT:
            self.consider_buying(seen)
            return
        self.face_problem(seen)
        self.receive_outreach(seen)
        count_before = self.update_memory(seen)
        if not self.consider_leaving(seen, count_before):
            self.settle_in()
        self.write_review(seen)

    def visit_touchpoints(self) -> Experiences:
        """Step 1: each touchpoint of the stage is visited and felt as good, neutral or bad."""
        seen = Experiences()
        rand = self.random.random
        levers = self.model.levers
        for j, bad, bad_or_good in levers.visit_draws(self.stage):
            u = rand()
            if u < bad:
                seen.hurt(j, levers.severity[j])
            elif u < bad_or_good:
                seen.good += 1
        tally = self.model.tally
        tally.experiences_good += seen.good
        tally.experiences_bad += seen.bad
        return seen

    def face_problem(self, seen: Experiences) -> None:
        """Step 2: a new problem may be caught first (proactive); one the customer meets is a bad
        experience once, and stays open until it fades or support resolves it. Each contact
        that does not resolve it is a new bad experience (the customer asked for help and did
        not get it); living with it quietly is not."""
        model, rand, tally, lv = self.model, self.random.random, self.model.tally, self.model.levers
        new = self.problem < 0
        if not new:
            if rand() < model.spec.behaviour.problem_fade:
                self.problem = -1
                return
        else:
            if rand() >= lv.problem_total[self.stage]:
                return
            tally.problems_arising += 1
            where = int(np.searchsorted(lv.problem_cumulative[self.stage], rand(), side="right"))
            if rand() < lv.detection[where]:
                tally.problems_detected += 1
                if rand() < lv.detection_delight:
                    seen.good += 1
                    tally.experiences_good += 1
                return
            self.problem = where
            seen.hurt(where, lv.severity[where])
            tally.experiences_bad += 1
        if rand() < lv.support_contact:
            seen.contacted = True
            tally.problems_contacted += 1
            if rand() < lv.first_contact_resolution:
                tally.problems_resolved += 1
                self.problem = -1
                if rand() < lv.recovery_delight:
                    seen.good += 1
                    tally.experiences_good += 1
            elif not new:  # a failed contact about a problem met earlier
                seen.hurt(self.problem, lv.severity[self.problem])
                tally.experiences_bad += 1

    def receive_outreach(self, seen: Experiences) -> None:
        """Step 3: a personal proactive contact is a good experience (aimed: only at risk)."""
        model = self.model
        chance = model.levers.outreach
        if model.levers.outreach_at_risk:
            at_risk = rules.at_risk(self.bad_count * model.memory.decay, self.satisfaction)
            chance = model.outreach_at_risk_chance if at_risk else 0.0
        if chance and self.random.random() < chance:
            seen.good += 1
            self.model.tally.outreach_contacts += 1
            self.model.tally.experiences_good += 1

    def update_memory(self, seen: Experiences) -> float:
        """Step 4: satisfaction moves; the bad-experience count fades. Returns the faded count."""
        s = self.model.spec.behaviour.satisfaction
        count_before = self.bad_count * self.model.memory.decay
        self.bad_count = count_before + seen.weight
        self.satisfaction = rules.update_satisfaction(
            self.satisfaction, self.resting, seen.good, seen.weight, s.relaxation, s.gain, s.loss
        )
        if seen.good or seen.bad or seen.contacted:  # surveyed after a memorable interaction
            self.model.tally.csat_respondents += 1
            self.model.tally.csat_satisfied += self.satisfaction >= rules.CSAT_SATISFIED
        return count_before

    def consider_leaving(self, seen: Experiences, count_before: float) -> bool:
        """Step 5: walk away after bad experiences, or leave at the baseline hazard."""
        model, memory = self.model, self.model.memory
        walk = 0.0
        if seen.bad:
            walk = float(
                rules.walk_away_step(count_before, seen.bad, memory.intercept, memory.slope,
                                     self.tolerance, seen.weight / seen.bad)
            )  # fmt: skip
        hazard = float(
            rules.baseline_hazard(self.theta, self.satisfaction, self.resting, model.elasticity)
        )
        u = self.random.random()
        if u < walk:
            self.leave(seen.last_bad)
        elif u < rules.churn_chance(walk, hazard):
            self.leave(len(model.causes) - 1)
        else:
            return False
        return True

    def leave(self, cause: int) -> None:
        model, t = self.model, self.model.now
        model.tally.leavers.append((self.arpu, self.theta, cause))
        model.closed_spells.append(
            (
                self.index,
                self.spell,
                self.acquired_step,
                int(self.channel),
                t,
                model.causes[cause],
                self.arpu,
            )
        )
        self.stage, self.churn_step, self.cause, self.problem = Stage.CHURNED, t, cause, -1

    def settle_in(self) -> None:
        """A staying customer pays this step; onboarding ends after its set number of steps."""
        model = self.model
        model.tally.revenue += self.arpu
        if (
            self.stage is Stage.ONBOARDING
            and model.now - self.acquired_step >= model.spec.behaviour.onboarding_steps
        ):
            self.stage = Stage.ACTIVE

    def write_review(self, seen: Experiences) -> None:
        """Step 6: some customers post a review; the company's score is the recent mean."""
        r = self.model.spec.behaviour.reviews
        chance = r.post_rate_after_bad if seen.bad else r.post_rate
        if self.random.random() < chance:
            self.model.tally.reviews_posted += 1
            self.model.tally.review_stars += rules.review_stars(self.satisfaction)

    def consider_buying(self, seen: Experiences) -> None:
        """Step 7: advertising (Bass p) or referral (q), damped by warnings, scaled by reviews."""
        model = self.model
        b = model.spec.behaviour
        factor = rules.warning_factor(
            self.detractor_contacts, b.negative_word_of_mouth.rate, b.negative_word_of_mouth.impact
        )
        if self.reads_reviews:
            factor *= model.review_factor
        ad = rules.damped(b.ad_conversion, factor)
        referral = rules.damped(
            rules.referral_chance(self.promoter_contacts, b.referral.rate, b.referral.conversion),
            factor,
        )
        u = self.random.random()
        if seen.bad:  # a bad first impression loses the sale this step
            return
        if u < referral:
            self.join(Channel.REFERRAL)
        elif u < rules.adoption_chance(ad, referral):
            self.join(Channel.ADS)

    def join(self, channel: Channel) -> None:
        model = self.model
        if self.churn_step >= 0:  # a former customer buying again
            self.spell += 1
            channel = Channel.WIN_BACK
        if channel is Channel.REFERRAL:
            model.tally.new_referral += 1
        elif channel is Channel.ADS:
            model.tally.new_ads += 1
        else:
            model.tally.new_win_back += 1
        self.stage = Stage.ONBOARDING if model.spec.behaviour.onboarding_steps else Stage.ACTIVE
        self.acquired_step, self.channel, self.churn_step, self.cause = model.now, channel, -1, -1

    def consider_returning(self) -> None:
        """Win-back: after a wait, a former customer may come back to the market."""
        w = self.model.spec.behaviour.win_back
        if not w.enabled or self.model.now - self.churn_step <= w.wait:
            return
        if self.random.random() < w.rate:
            self.stage = Stage.PROSPECT
            self.satisfaction, self.bad_count = self.resting, 0.0
            self.model.tally.returned += 1


class AgentsModel(CustomerModel):
    """The Mesa agents engine (reference): one ``Person`` agent per node of the network."""

    engine = "agents"

    def _connect(self, spec: Network) -> None:
        self.edges = network.edges(spec, self.n, self.rng)  # for the graph of Mesa's space

    def _setup_people(self, traits: dict[str, np.ndarray]) -> None:
        spec = self.spec
        self.well_mixed = spec.network.kind is NetworkKind.well_mixed
        self.wom = spec.behaviour.negative_word_of_mouth
        self.elasticity = spec.behaviour.baseline_churn.satisfaction_elasticity
        self.grid = compat.network_space(network.graph(self.edges, self.n), self.random)
        self.closed_spells: list[tuple] = []
        self.tally = self.new_tally()
        self.people = Person.create_agents(self, self.n, index=list(range(self.n)), traits=traits)
        for person in self.people:
            person.cell = self.grid[person.index]
        self.mean_field = (0.0, 0.0)

    def _advance(self, t: int) -> Tally:
        self.tally = self.new_tally()
        self.review_factor = self.review_multiplier()
        self.people.do("speak")
        if self.well_mixed:
            voices = self.people.get("voice")
            contacts = self.spec.network.mean_degree / max(self.n - 1, 1)
            self.mean_field = (
                contacts * voices.count(PROMOTER),
                contacts * voices.count(DETRACTOR),
            )
        self.people.do("listen")
        if self.levers.outreach_at_risk:
            decay = self.memory.decay
            customers = [p for p in self.people if p.is_customer]
            at_risk = sum(bool(rules.at_risk(p.bad_count * decay, p.satisfaction))
                          for p in customers)  # fmt: skip
            self.outreach_at_risk_chance = rules.outreach_chance(
                self.levers.outreach, len(customers), at_risk
            )
        self.people.do("step")
        return self.tally

    def _census(self) -> Census:
        counts = [0, 0, 0, 0]
        promoters = detractors = problems = 0
        satisfaction = 0.0
        for p in self.people:
            counts[p.stage] += 1
            if p.is_customer:
                satisfaction += p.satisfaction
                promoters += rules.is_promoter(p.satisfaction)
                detractors += rules.is_detractor(p.satisfaction)
                problems += p.problem >= 0
        return Census(*counts, promoters, detractors, satisfaction, problems)

    def _spells(self) -> pd.DataFrame:
        open_spells = [
            (p.index, p.spell, p.acquired_step, int(p.channel), -1, "", p.arpu)
            for p in self.people
            if p.is_customer
        ]
        return pd.DataFrame(self.closed_spells + open_spells, columns=CUSTOMER_TABLE_COLUMNS[:-1])
