"""A person's first session in headless Chromium: the asset graph, one month × method launched
from the Jobs page by clicking, its run to success, and the model version it registered in MLflow.

Chromium and ChromeDriver are Debian's (/usr/bin), installed by `make test` when missing.
Screenshots of each page are left in the test's tmp dir.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from ui_servers import running_servers

from semid_assets.settings import Settings

pytestmark = pytest.mark.heavy

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Headless as root on a machine with no network but loopback: no sandbox, and none of
# Chromium's background connections (each would be refused and retried).
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1600,1000"]
PAGE_SECONDS = 60
RUN_SECONDS = 420
METHOD = "rq_kmeans"


@pytest.fixture
def browser(tmp_path):
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), "run `make test`: it installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, seconds: float = PAGE_SECONDS):
    return WebDriverWait(driver, seconds, poll_frequency=0.5,
                         ignored_exceptions=[StaleElementReferenceException]).until(condition)


def _visible(driver, xpath: str, seconds: float = PAGE_SECONDS):
    """The first displayed element matching ``xpath`` (Dagster also renders hidden copies of
    labels, to measure them)."""
    def shown(d):
        return next((e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()), False)

    return _wait(driver, shown, seconds)


def _click(driver, xpath: str, seconds: float = PAGE_SECONDS):
    """Click the first displayed, enabled match of ``xpath``, retrying while something covers it."""
    def clicked(d):
        for element in d.find_elements(By.XPATH, xpath):
            if element.is_displayed() and element.is_enabled():
                try:
                    element.click()
                except ElementClickInterceptedException:
                    return False
                return element
        return False

    return _wait(driver, clicked, seconds)


def _open_asset_graph(driver, servers, shots: Path) -> None:
    driver.get(f"{servers.dagster_url}/asset-groups")
    _visible(driver, "//*[normalize-space()='Global asset lineage']")
    for group in ("ingest", "features", "alignment", "tokenizer"):
        _visible(driver, f"//*[normalize-space()='{group}']")
    # dagster.yaml turns off the "join the community" dialog that would cover the first page.
    assert not driver.find_elements(By.XPATH, "//*[normalize-space()='Join the Dagster community']")
    driver.save_screenshot(str(shots / "1-asset-graph.png"))


def _launch_from_jobs_page(driver, month: str, shots: Path) -> str:
    """Jobs → tokenizer_job → Materialize all… → method and month → Launch 1 run; return the run's URL."""
    _click(driver, "//a[normalize-space()='Jobs']")
    _click(driver, "//a[normalize-space()='tokenizer_job']")
    _click(driver, "//button[contains(normalize-space(), 'Materialize all')]")
    dialog = _visible(driver, "//*[@role='dialog'][.//*[starts-with(normalize-space(), 'Launch runs to materialize')]]")
    _click(driver, "//*[@role='dialog']//*[normalize-space()='Select a partition or create one']")
    _click(driver, f"//label[.//span[normalize-space()='{METHOD}']]")
    # Closing the method list: a click on the dialog's title, outside the list.
    dialog.find_element(By.XPATH, ".//*[starts-with(normalize-space(), 'Launch runs to materialize')]").click()
    months = dialog.find_element(By.XPATH, ".//input[starts-with(@placeholder, 'ex: ')]")
    months.click()
    months.send_keys(month, Keys.TAB)
    _visible(driver, "//*[@role='dialog']//button[normalize-space()='Launch 1 run']")
    driver.save_screenshot(str(shots / "2-launch-dialog.png"))
    launch = _click(driver, "//*[@role='dialog']//button[normalize-space()='Launch 1 run']")
    _wait(driver, ec.staleness_of(launch))
    toast_link = _visible(driver, "//*[@data-sonner-toast][.//*[starts-with(normalize-space(), 'Launched run')]]"
                                  "//a[starts-with(@href, '/runs/')]")
    return toast_link.get_attribute("href")


def _wait_for_success(driver, run_url: str, shots: Path) -> str:
    driver.get(run_url)
    status = _visible(driver, "//*[normalize-space()='Success' or normalize-space()='Failure' or "
                              "normalize-space()='Canceled']", RUN_SECONDS)
    driver.save_screenshot(str(shots / "3-run.png"))
    return status.text.strip()


def _model_version_url(settings: Settings, month: str) -> str:
    import dagster as dg

    from semid_assets.partitions import METHOD as METHOD_DIM
    from semid_assets.partitions import MONTH

    key = str(dg.MultiPartitionKey({MONTH: month, METHOD_DIM: METHOD}))
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("tokenizer"), asset_partitions=[key]), limit=1).records
    assert records, f"no tokenizer materialisation for {key}"
    return records[0].asset_materialization.metadata["mlflow_model_version"].value


def _aliases_of(settings: Settings, version_url: str) -> tuple[str, list[str]]:
    from urllib.parse import unquote

    from mlflow.tracking import MlflowClient

    name, version = unquote(version_url.split("#/models/", 1)[1]).split("/versions/")
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    return name, list(client.get_model_version(name, version).aliases)


def _first_visit_clicks(driver, servers, shots: Path) -> None:
    """The clicks `semid ui` prints (ui.MLFLOW_FIRST_VISIT) give the model registry in the
    model-training view with nothing over it, and the browser keeps them across a reload."""
    driver.get(servers.mlflow_url)
    _click(driver, "//*[@role='button'][normalize-space()='Model training']")
    _click(driver, "//button[@aria-label='Close'][@data-component-id='mlflow.assistant.chat_panel.close']")
    driver.get(f"{servers.mlflow_url}/#/models")
    _click(driver, "//*[@role='dialog'][.//*[contains(normalize-space(), 'new Model Registry UI')]]"
                   "//button[@aria-label='Close']")
    driver.refresh()
    _visible(driver, "//a[normalize-space()='Model registry']")
    _visible(driver, "//a[starts-with(normalize-space(), 'semid-')]")  # the registry's rows have rendered
    covering = driver.find_elements(By.XPATH, "//*[@role='dialog'] | "
                                              "//*[@data-component-id='mlflow.assistant.chat_panel.close']")
    assert not [e for e in covering if e.is_displayed()], "a panel or dialog came back after a reload"
    driver.save_screenshot(str(shots / "5-mlflow-model-training.png"))


def test_launch_a_month_from_the_jobs_page_and_see_its_model_alias_in_mlflow(one_month_home, browser, tmp_path):
    settings, month = one_month_home
    shots = tmp_path / "screenshots"
    shots.mkdir()
    environ = dict(os.environ, SEMID_SIZE="tiny", SEMID_DATASET="synthetic")
    started = time.monotonic()
    with running_servers(settings, tmp_path / "servers.log", environ) as servers:
        ready = time.monotonic()
        _open_asset_graph(browser, servers, shots)
        run_url = _launch_from_jobs_page(browser, month, shots)
        assert _wait_for_success(browser, run_url, shots) == "Success", servers.log()[-3000:]
        ran = time.monotonic()

        version_url = _model_version_url(settings, month)
        assert version_url.startswith(f"{servers.mlflow_url}/#/models/"), version_url
        name, aliases = _aliases_of(settings, version_url)
        assert aliases, f"{name}: the run registered a version with no alias"
        browser.get(version_url)
        for alias in aliases:
            tag = _visible(browser, f"//*[@role='status'][@title='{alias}']")
            assert alias in tag.text, (alias, tag.text)
        browser.save_screenshot(str(shots / "4-mlflow-model-version.png"))

        _first_visit_clicks(browser, servers, shots)
        assert "will not be used to configure Dagster" not in servers.log()
    print(f"servers ready {ready - started:.0f}s, launch→success {ran - ready:.0f}s, screenshots in {shots}")
