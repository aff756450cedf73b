"""``dg scaffold defs dagster_corrmon.CorrmonComponent NAME``: a ``defs.yaml`` that loads as is.

``--json-params '{"model": "delay_model", "evaluation": "predictions"}'`` names the model and
its evaluation asset; without them the placeholders ``my_model``/``my_evaluation`` are written
(replace them with your asset keys).
"""

import dagster as dg


class CorrmonScaffoldParams(dg.Model):
    model: str = "my_model"
    evaluation: str = "my_evaluation"


class CorrmonScaffolder(dg.Scaffolder[CorrmonScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[CorrmonScaffoldParams]:
        return CorrmonScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[CorrmonScaffoldParams]) -> None:
        dg.scaffold_component(
            request,
            {
                "models": [
                    {"model": request.params.model, "evaluation": request.params.evaluation}
                ],
                "checks": [],
            },
        )
