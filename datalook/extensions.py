"""Flask extensions as module-level singletons, bound to the app in create_app()."""

from collections.abc import Callable

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from .models import Base


class PagesOrApiLoginManager(LoginManager):
    """Flask-Login's manager, whose "log in first" a hook may answer for machine-facing
    requests (a 401 in the JSON envelope: see errors.py) before the usual redirect."""

    api_answer: Callable[[], object | None] | None = None

    def unauthorized(self):
        """The hook's answer when it has one, else Flask-Login's redirect to the log-in page."""
        answer = self.api_answer() if self.api_answer is not None else None
        return answer if answer is not None else super().unauthorized()


# The models are plain SQLAlchemy (models.Base, no Flask); Flask-SQLAlchemy serves their
# metadata (db.metadata is Base.metadata: create_all, migrations) through db.session.
db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = PagesOrApiLoginManager()
csrf = CSRFProtect()
# Storage and strategy come from the app config (see ratelimit/limiter.py).
limiter = Limiter(key_func=get_remote_address)
