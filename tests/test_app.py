"""The local web page (`kpvp.app`, `kpvp.web`): input checks, one generation at a time, and the
page driven in headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium) on
a tiny run; the browser test skips with the reason where the browser or Selenium is missing."""
import io
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from kpvp import cli, errors, web
from kpvp.data import video_io

from helpers import REPO
from helpers.tiny_run import SIZE, save_tiny_run, tiny_config

CLASSES = ("wave", "squat")


def png(height, width, seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def gif(num_frames, size=SIZE) -> bytes:
    frames = np.random.default_rng(1).integers(0, 256, (num_frames, size, size, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(frames[0]).save(buffer, format="GIF", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    return buffer.getvalue()


# === Input checks ===

def test_decode_image_reads_an_image_and_refuses_junk_and_oversized_images():
    assert web.decode_image(png(20, 30)).shape == (20, 30, 3)
    with pytest.raises(errors.InvalidInput, match="'notes.txt' is not an image"):
        web.decode_image(b"just some text", "notes.txt")
    with pytest.raises(errors.InvalidInput, match="40x40: each side must be between 1 and 32"):
        web.decode_image(png(40, 40), max_side=32)
    with pytest.raises(errors.InvalidInput, match="long side may be at most 4 times"):
        web.decode_image(png(10, 50))


def test_decode_video_refuses_a_driving_video_over_the_frame_cap_and_junk():
    assert web.decode_video(gif(5), "d.gif", max_frames=5).shape == (5, SIZE, SIZE, 3)
    with pytest.raises(errors.InvalidInput, match="'d.gif' is too long: more than 4 frames"):
        web.decode_video(gif(5), "d.gif", max_frames=4)
    with pytest.raises(errors.InvalidInput, match="cannot read video"):
        web.decode_video(b"not a video at all", "d.mp4")
    with pytest.raises(video_io.VideoTooLargeError, match="over the budget"):
        web.decode_video(gif(5), "d.gif", limits={"max_bytes": 4 * SIZE * SIZE * 3})


def test_actions_and_numbers_from_the_form():
    assert web.parse_action("squat", CLASSES) == 1
    assert web.parse_action("", ("only",)) == 0  # one class: nothing to choose
    with pytest.raises(errors.InvalidInput, match="Unknown action 'jump'; choose one of wave"):
        web.parse_action("jump", CLASSES)
    assert web.parse_int("3", "Samples", 1, 4, 1) == 3
    with pytest.raises(errors.InvalidInput, match="Samples must be between 1 and 4, got 5"):
        web.parse_int("5", "Samples", 1, 4, 1)


# === One generation at a time ===

class BlockingModel:
    """Stands in for a trained model: `generate` waits until the test releases it."""

    class_names, image_size, can_transfer, video_limits = CLASSES, 8, True, {}

    def __init__(self):
        self.release = threading.Event()

    def generate(self, images, actions, seed):
        assert self.release.wait(30)
        n = len(images)
        return {"video": np.full((n, 3, 8, 8, 3), 100 + seed, np.uint8),
                "keypoints": np.zeros((n, 3, 2, 2), np.float32),
                "mask": np.zeros((n, 3, 8, 8, 1), np.float32)}


def wait_for(job, timeout=30):
    deadline = time.monotonic() + timeout
    while job.status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return job.status


def test_a_second_generation_while_one_runs_is_refused_with_a_message(tmp_path):
    model = BlockingModel()
    studio = web.Studio(model, str(tmp_path))
    image = np.zeros((8, 8, 3), np.uint8)
    job = studio.generate(image, 1, seed=2, num_samples=2)
    with pytest.raises(web.Busy, match="A generation is running"):
        studio.generate(image, 0, seed=0, num_samples=1)
    assert "Working: generating 2 video(s)" in web.render_page(studio, job=job)
    model.release.set()
    assert wait_for(job) == "done"
    assert [v["gif"] for v in job.videos] == ["sample_0.gif", "sample_1.gif"]
    video = video_io.read_video(str(tmp_path / job.id / "sample_1.mp4"))
    assert video.shape == (3, 8, 8, 3) and abs(int(video.mean()) - 102) <= 2
    page = web.render_page(studio, job=job)
    assert "squat, seed 2" in page and f"/files/{job.id}/sample_1.mp4" in page
    assert wait_for(studio.generate(image, 0, seed=0, num_samples=1)) == "done"  # free again


def test_the_routes_show_bad_input_and_busy_as_messages_on_the_page(tmp_path):
    pytest.importorskip("flask")
    from kpvp import app

    model = BlockingModel()
    studio = web.Studio(model, str(tmp_path))
    client = app.create_app(studio).test_client()
    assert b'id="generate"' in client.get("/").data
    junk = client.post("/generate", data={"image": (io.BytesIO(b"text"), "a.txt"),
                                          "action": "squat"})
    assert junk.status_code == 400 and b"&#x27;a.txt&#x27; is not an image" in junk.data
    unknown = client.post("/generate", data={"image": (io.BytesIO(png(8, 8)), "a.png"),
                                             "action": "jump"})
    assert unknown.status_code == 400 and b"Unknown action" in unknown.data
    started = client.post("/generate", data={"image": (io.BytesIO(png(8, 8)), "a.png"),
                                             "action": "squat"})
    assert started.status_code == 303
    busy = client.post("/generate", data={"image": (io.BytesIO(png(8, 8)), "a.png"),
                                          "action": "wave"})
    assert busy.status_code == 429 and b"A generation is running" in busy.data
    model.release.set()
    job = studio.jobs[started.headers["Location"].rsplit("/", 1)[1]]
    assert wait_for(job) == "done"
    assert client.get(f"/files/{job.id}/sample_0.gif").status_code == 200
    assert client.get("/files/nojob/sample_0.gif").status_code == 404


def test_an_upload_over_the_limit_and_a_single_class_model(tmp_path):
    pytest.importorskip("flask")
    from kpvp import app

    model = BlockingModel()
    server = app.create_app(web.Studio(model, str(tmp_path)))
    server.config["MAX_CONTENT_LENGTH"] = 1000  # the real limit is MAX_UPLOAD_MB
    big = server.test_client().post("/generate", data={"image": (io.BytesIO(png(64, 64)), "a.png")})
    assert big.status_code == 413 and f"larger than {web.MAX_UPLOAD_MB} MB".encode() in big.data
    assert 'id="action"' in web.render_page(web.Studio(model, str(tmp_path)))
    model.class_names = ("walk",)  # one class: nothing to choose
    page = web.render_page(web.Studio(model, str(tmp_path)))
    assert 'id="action"' not in page and "Action: walk (one class)" in page


def test_the_app_names_a_missing_run_in_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "kpvp.app", f"--workdir={tmp_path}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "kpvp.app: error: " in proc.stderr and "holds no trained run" in proc.stderr


# === In a real browser ===

def browser_paths():
    """(chromium, chromedriver) or a skip naming what is missing."""
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    pytest.importorskip("flask", reason='Flask is not installed (pip install -e ".[app]")')
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no headless browser: apt-get install chromium chromium-driver "
                    "(.ci/run does in CI)")
    return browser, driver


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    """`python -m kpvp.app` on a tiny run, on a free port: its URL."""
    browser_paths()
    workdir = tmp_path_factory.mktemp("run")
    cli.save_config(save_tiny_run(workdir), str(workdir))
    log = workdir / "app.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    with open(log, "w") as err, open(workdir / "app.out", "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "kpvp.app", f"--workdir={workdir}",
                                   "--port=0", "--max_driving_frames=8"],
                                  cwd=REPO, env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 180
        while "http://" not in (workdir / "app.out").read_text():
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the page did not start within 180 s"
            time.sleep(0.2)
        yield (workdir / "app.out").read_text().split()[-1]
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture()
def chrome(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1100,800"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path),
                                              "download.prompt_for_download": False})
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def wait_for_file(path, timeout=30):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path


@pytest.mark.slow
def test_the_page_in_chromium_generates_downloads_and_transfers(page_url, chrome, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def submit(button, files):
        for name, (file_name, data) in files.items():
            (tmp_path / file_name).write_bytes(data)
            chrome.find_element(By.ID, name).send_keys(str(tmp_path / file_name))
        old_page = chrome.find_element(By.TAG_NAME, "html")
        chrome.find_element(By.ID, button).click()
        # The previous page's message must not count: wait for the new page first.
        WebDriverWait(chrome, 120).until(expected_conditions.staleness_of(old_page))
        WebDriverWait(chrome, 120).until(lambda d: d.find_elements(By.ID, "results")
                                         or d.find_elements(By.ID, "message"))

    def message():
        found = chrome.find_elements(By.ID, "message")
        return found[0].text if found else ""

    chrome.get(page_url)
    submit("generate", {"image": ("notes.txt", b"not an image")})
    assert "'notes.txt' is not an image" in message()

    Select(chrome.find_element(By.ID, "action")).select_by_visible_text("squat")
    Select(chrome.find_element(By.ID, "samples")).select_by_visible_text("2")
    submit("generate", {"image": ("person.png", png(48, 80))})
    assert message() == ""
    assert len(chrome.find_elements(By.CSS_SELECTOR, "img.plain")) == 2
    assert "squat, seed 0" in chrome.find_element(By.ID, "results").text
    chrome.find_element(By.ID, "overlay").click()  # the switch shows the overlay videos
    assert chrome.find_elements(By.CSS_SELECTOR, "img.overlay")[0].is_displayed()
    chrome.save_screenshot(str(tmp_path / "page.png"))
    chrome.find_elements(By.CSS_SELECTOR, "a.download-gif")[1].click()
    video = video_io.read_video(str(wait_for_file(tmp_path / "sample_1.gif")))
    # T+1 frames (x0 and T predicted ones) of the model's size
    assert video.shape == (tiny_config().data.seq_len, SIZE, SIZE, 3)
    chrome.find_elements(By.CSS_SELECTOR, "a.download-mp4")[0].click()
    assert video_io.read_video(str(wait_for_file(tmp_path / "sample_0.mp4"))).shape == \
        video.shape

    chrome.find_element(By.LINK_TEXT, "Motion transfer").click()
    submit("animate", {"image": ("person.png", png(48, 80)), "driving": ("long.gif", gif(9))})
    assert "'long.gif' is too long: more than 8 frames" in message()
    submit("animate", {"image": ("person.png", png(48, 80)), "driving": ("d.gif", gif(5))})
    assert message() == ""
    chrome.find_element(By.CSS_SELECTOR, "a.download-gif").click()
    transfer = video_io.read_video(str(wait_for_file(tmp_path / "transfer.gif")),
                                   frame_size=(SIZE, 3 * SIZE))
    assert transfer.shape == (5, SIZE, 3 * SIZE, 3)  # driving | source | result
