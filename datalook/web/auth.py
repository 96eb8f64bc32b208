"""Sign up, log in, log out."""

from __future__ import annotations

import functools
import secrets

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from ..accounts import audit
from ..accounts.login_guard import (
    account_wait,
    is_known_device,
    locked_message,
    record_failure,
    remember_device,
    signup_hourly_limit,
)
from ..accounts.redirects import is_local_path
from ..extensions import db
from ..models import User
from ..ratelimit.limiter import auth_form_limit
from ..sql.connections import add_unique
from .forms.accounts import EmptyForm, LoginForm, SignupForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Return a local redirect target, never another site (or a header injection)."""
    return target if target and is_local_path(target) else url_for("sites.index")


@bp.route("/")
def home():
    """Send owners to their sites; show visitors what DataLook does."""
    if current_user.is_authenticated:
        return redirect(url_for("sites.index"))
    return render_template("landing.html")


@bp.route("/signup", methods=["GET", "POST"])
@auth_form_limit
@signup_hourly_limit
def signup():
    """Create an account and log it in (then go to `next`, e.g. an invitation's page)."""
    form = SignupForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args["email"][:254]  # an invitation's link fills it in
    if form.validate_on_submit():
        user = User(email=User.normalise_email(form.email.data))
        user.set_password(form.password.data)
        if not add_unique(db.session(), user):
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            login_user(user)
            target = request.args.get("next")
            if not (target and is_local_path(target)):
                flash("Welcome to DataLook! Add your first site to get started.", "success")
            # The browser that created the account is a known device from the start.
            return remember_device(redirect(_safe_next(target)), user.id)
    return render_template("auth/signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@auth_form_limit
def login():
    """Log in with email and password."""
    form = LoginForm()
    if form.validate_on_submit():
        email = User.normalise_email(form.email.data)
        user = db.session.scalar(select(User).where(User.email == email))
        known_device = user is not None and is_known_device(user.id)
        wait = 0 if known_device else account_wait(email)
        if wait:
            # Refused before the password is checked: guesses past the limit are not tried.
            form.password.errors.append(locked_message(wait))
            page = render_template("auth/login.html", form=form)
            return page, 429, {"Retry-After": str(wait)}
        if user is not None and user.check_password(form.password.data):
            login_user(user)
            audit.record(None, user, "sign_in", user.email)
            db.session.commit()
            return remember_device(redirect(_safe_next(request.args.get("next"))), user.id)
        if user is None:
            _equalise_timing(form.password.data)
        else:
            # A wrong password for an existing account shows on its sites' audit pages;
            # unknown addresses are not recorded (see SECURITY.md, "The audit log").
            audit.record(None, user, "sign_in_failed", user.email)
            db.session.commit()
        if not known_device:
            record_failure(email)
        form.password.errors.append("Email or password is incorrect.")
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@functools.cache
def _dummy_user() -> User:
    """Return an unsaved user whose hash is checked when the email is unknown."""
    user = User()
    user.set_password(secrets.token_urlsafe(16))
    return user


def _equalise_timing(password: str) -> None:
    """Spend one bcrypt check so unknown emails cannot be told apart by timing."""
    _dummy_user().check_password(password)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST only, CSRF-protected)."""
    if EmptyForm().validate_on_submit():
        logout_user()
        flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
